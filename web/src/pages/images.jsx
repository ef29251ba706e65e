// Images: ask for images (priced before asking: the quote is the hold, and only delivered images are charged),
// then a gallery of the caller's images with thumbnails, the original through a signed URL, and delete.
import { useEffect, useState } from "preact/hooks";
import { api, newKey } from "../api.js";
import { Empty, Loading, Problem, credits, useAction, useLoad, when } from "../ui.jsx";
// ENDED: expired too (an image task past its deadline was polled forever)
import { BuyCredits, TERMINAL as ENDED } from "./tasks.jsx";

const SIZES = ["512x512", "768x768", "1024x1024", "1024x768", "768x1024"];

export function ImagesPage() {
  const models = useLoad(() => api("GET", "/models"));
  const gallery = useLoad(() => api("GET", "/images?limit=24"));
  const imageModels = models.data ? models.data.models.filter((m) => m.capabilities.includes("image")) : [];
  const [model, setModel] = useState("");
  const [prompt, setPrompt] = useState("");
  const [size, setSize] = useState("512x512");
  const [n, setN] = useState(1);
  const [quote, setQuote] = useState(null);
  const [quoteError, setQuoteError] = useState(null);
  const [task, setTask] = useState(null);
  const chosen = model || (imageModels[0] && imageModels[0].id) || "";

  useEffect(() => {  // the price of what the form asks for, before asking
    if (!chosen) return;
    let live = true;
    api("GET", `/images/quote?model=${encodeURIComponent(chosen)}&size=${size}&n=${n}`)
      .then((q) => { if (live) { setQuote(q); setQuoteError(null); } })
      .catch((e) => { if (live) { setQuote(null); setQuoteError(e); } });
    return () => { live = false; };
  }, [chosen, size, n]);

  useEffect(() => {  // a task asked for here: followed until it ends, then the gallery shows its images
    if (!task || ENDED.has(task.state)) return;
    const timer = setTimeout(async () => {
      try {
        const now = await api("GET", `/tasks/${encodeURIComponent(task.id)}`);
        setTask(now);
        if (ENDED.has(now.state)) await gallery.reload();
      } catch (e) { setTask({ ...task, state: "failed", error: { detail: e.message } }); }
    }, 500);
    return () => clearTimeout(timer);
  }, [task]);

  const [ask, asking, askError] = useAction(async () => {
    const made = await api("POST", "/images", { prompt, model: chosen, size, n },
      { idempotencyKey: newKey("img").replace(/[^A-Za-z0-9_-]/g, "") });
    setTask(made);
  });
  const [remove, removing, removeError] = useAction(async (id) => {
    await api("DELETE", `/images/${encodeURIComponent(id)}`);
    await gallery.reload();
  });

  return <>
    <form class="card" onSubmit={(e) => { e.preventDefault(); ask(); }}>
      <h2>Ask for images</h2>
      {models.error && <Problem error={models.error} />}
      {models.data && !imageModels.length ? <Empty>No image model is configured on this platform.</Empty> : <>
        <label for="image-prompt">Prompt</label>
        <textarea id="image-prompt" required maxLength={4000} rows={3} value={prompt}
          onInput={(e) => setPrompt(e.target.value)} />
        <div class="row">
          <div><label for="image-model">Model</label><select id="image-model" value={chosen}
            onChange={(e) => setModel(e.target.value)}>{imageModels.map((m) =>
              <option key={m.id} value={m.id}>{m.label}</option>)}</select></div>
          <div><label for="image-size">Size</label><select id="image-size" value={size}
            onChange={(e) => setSize(e.target.value)}>{SIZES.map((s) => <option key={s} value={s}>{s}</option>)}
          </select></div>
          <div><label for="image-n">Images</label><select id="image-n" value={n}
            onChange={(e) => setN(Number(e.target.value))}>{[1, 2, 3, 4].map((k) =>
              <option key={k} value={k}>{k}</option>)}</select></div>
        </div>
        <p data-testid="image-quote">{quote ? <>Price: <strong>{credits(quote.price)}</strong> ({quote.steps} steps;
          only delivered images are charged)</> : quoteError ? "" : "Pricing…"}</p>
        <Problem error={quoteError} />
        <button type="submit" disabled={asking || !quote}>Generate</button>
      </>}
      <Problem error={askError} />
      {task && <p role="status" data-testid="image-task">Task {task.id}: {task.state}
        {task.error ? ` (${task.error.detail || task.error.title})` : ""}<BuyCredits error={task.error} /></p>}
    </form>
    <section class="card" aria-labelledby="gallery-title">
      <h2 id="gallery-title">Your images</h2>
      <Problem error={removeError} />
      {gallery.loading ? <Loading what="images" /> : gallery.error ? <Problem error={gallery.error} /> :
        !gallery.data.images.length ? <Empty>No images yet.</Empty> :
          <ul class="gallery">{gallery.data.images.map((image) => <li key={image.id} data-testid="image">
            <a href={image.url} target="_blank" rel="noopener">
              <img src={image.thumbnails["256"] || image.url} alt={image.prompt} width={128} loading="lazy" /></a>
            <p>{image.size} · {credits(image.price)}{image.demo ? " · demo" : ""} · {when(image.createdAt)}</p>
            <button type="button" class="secondary" disabled={removing} onClick={() => remove(image.id)}
              aria-label={`Delete image ${image.id}`}>Delete</button></li>)}</ul>}
    </section>
  </>;
}
