// Chat in conversations: replies stream over POST /api/v1/chat (server-sent events); the model and its price are
// shown before sending; each reply shows its charge and what conversation memory did.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, newKey, postStream } from "../api.js";
import { credits, Empty, Loading, Problem, useLoad } from "../ui.jsx";


const MAX_IMAGE = 10 * 1024 * 1024; // bytes: the uploads route's limit, as its label says

/** The models on offer; with `preferences`, "auto" says it asks the user's preferred model first, as the server does
 * (unless cost-saving routing is on). */
export function ModelPicker({ id, value, onChange, capability = "chat", preferences = false }) {
  const models = useLoad(() => api("GET", "/models"));
  const prefs = useLoad(() => (preferences ? api("GET", "/me/preferences") : null)); // unread: said as no preference
  if (models.loading) return <Loading what="models" />;
  if (models.error) return <Problem error={models.error} />;
  const offered = models.data.models.filter((m) => m.capabilities.includes(capability));
  const chosen = offered.find((m) => m.id === value);
  const preferred = prefs.data && !prefs.data.costSaving && offered.find((m) => m.id === prefs.data.preferredModel);
  const named = preferred && (preferred.label || preferred.id);
  return <div>
    <label for={id}>Model</label>
    <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
      <option value="">{preferred ? `auto: your preferred model, ${named}` : "auto: the cheapest healthy model"}</option>
      {offered.map((m) => <option key={m.id} value={m.id}>{m.label || m.id}{m.demo ? " (demo)" : ""}</option>)}
    </select>
    <p class="muted" data-testid="price">{chosen ? <>Price: {chosen.inputPerMillion.credits} cr per million
      input tokens, {chosen.outputPerMillion.credits} cr per million output tokens
      {chosen.demo ? ". A demo model: offline, answers are not real" : ""}.</>
      : preferred ? `auto asks your preferred model (see Preferences), ${named}, when it can read the request, else ` +
        "the cheapest healthy model that can; its price shows on the reply."
      : "auto picks the cheapest healthy model that can read the request; its price shows on the reply."}</p>
  </div>;
}

export function ChatPage() {
  const list = useLoad(() => api("GET", "/conversations"));
  const [current, setCurrent] = useState(null);
  const [detail, setDetail] = useState(null);
  const [messages, setMessages] = useState([]);
  const [text, setText] = useState("");
  const [image, setImage] = useState(null); // a File to attach, for a vision model
  const picker = useRef(null);
  const box = useRef(null); // the message box: focus goes back to it on sending, not to the page (Send is disabled)
  const [model, setModel] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);

  const showing = useRef(null); // the conversation on screen: a reply on its way updates only its own
  useEffect(() => {
    showing.current = current;
    setMessages([]);
    setDetail(null);
    if (!current) return undefined;
    let stale = false; // another conversation was opened meanwhile
    api("GET", `/conversations/${current}`).then((d) => {
      if (stale) return;
      setDetail(d);
      // a message sent while this loaded is kept as it streams (its turn may or may not be in this history)
      setMessages((sent) => (sent.length ? sent : d.history.map((m) => ({ role: m.role, text: m.content }))));
    }, (error) => { if (!stale) setError(error); });
    return () => { stale = true; };
  }, [current]);

  const create = async () => {
    setError(null);
    try {
      const made = await api("POST", "/conversations", { title: `Conversation ${new Date().toLocaleString()}` });
      await list.reload();
      setCurrent(made.id);
    } catch (caught) { setError(caught); }
  };
  const remove = async (id) => {
    setError(null);
    try {
      await api("DELETE", `/conversations/${id}`);
      if (current === id) setCurrent(null);
      await list.reload();
    } catch (caught) { setError(caught); }
  };
  const send = async (event) => {
    event.preventDefault();
    if (!text.trim()) { // the box's `required` lets spaces through: said, not silently dropped
      setError(new ApiError(422, { detail: "write a message first: this one is only spaces" }));
      return;
    }
    setError(null);
    box.current.focus();
    setBusy(true);
    const asked = text;
    const attached = image;
    setText("");
    const reply = { role: "assistant", text: "", streaming: true };
    setMessages((ms) => [...ms, { role: "user", text: attached ? `${asked} [image: ${attached.name}]` : asked },
      reply]);
    const sentIn = current;
    const update = (change) => { // another conversation opened meanwhile: this reply is in its own, not shown here
      if (showing.current !== sentIn) return;
      setMessages((ms) => [...ms.slice(0, -1), { ...ms[ms.length - 1], ...change }]);
    };
    let said = "";
    try {
      let content = asked;
      if (attached) { // uploaded first (sniffed and stripped by the server), then sent by reference
        const kept = await api("POST", "/uploads", attached);
        content = [{ type: "text", text: asked }, { type: "image", url: kept.reference }];
      }
      const body = { messages: [{ role: "user", content }], stream: true,
        ...(model ? { model } : {}), ...(current ? { conversationId: current } : {}) };
      await postStream("/chat", body, newKey("chat"), (name, data) => {
        if (name === "done") {
          update({ streaming: false, done: data, text: data.text ?? said });
        } else if (data.delta) {
          said += data.delta;
          update({ text: said });
        }
      });
    } catch (caught) {
      update({ streaming: false, failed: true });
      setError(caught);
      setText((now) => now || asked); // typed again or sent again, not lost
    } finally {
      setBusy(false);
      if (attached) { // sent with this message, or refused with it: the next message goes without it
        setImage(null);
        if (picker.current) picker.current.value = "";
      }
    }
  };

  return <div class="chat">
    <section aria-labelledby="convs-title">
      <h2 id="convs-title">Conversations</h2>
      <button type="button" onClick={create}>New conversation</button>
      {list.loading ? <Loading what="conversations" /> : list.error ? <Problem error={list.error} /> :
        !list.data.conversations.length ? <Empty>No conversations yet. Without one, each message stands alone.</Empty> :
        <ul>{list.data.conversations.map((c) => <li key={c.id}>
          <button type="button" class="secondary" aria-pressed={current === c.id} onClick={() => setCurrent(c.id)}>
            {c.title}</button>{" "}
          <button type="button" class="secondary" aria-label={`Delete ${c.title}`} onClick={() => remove(c.id)}>
            Delete</button></li>)}</ul>}
      {current && <p><button type="button" class="secondary" onClick={() => setCurrent(null)}>
        Leave the conversation</button></p>}
    </section>
    <section aria-labelledby="chat-title">
      <h2 id="chat-title">{detail ? detail.title : "Chat (no conversation: no memory)"}</h2>
      {detail && detail.summary && <p class="muted">Memory summary: {detail.summary}</p>}
      <div class="messages" aria-live="polite" aria-label="Conversation so far" data-testid="messages">
        {!messages.length ? <Empty>No messages yet.</Empty> : messages.map((m, i) =>
          <div key={i} class={`msg ${m.role}`}><strong>{m.role === "user" ? "You" : "Assistant"}:</strong> {m.text}
            {m.streaming && <span class="muted"> (streaming…)</span>}
            {m.failed && <span> (failed: see the error)</span>}
            {m.done && <div class="muted" data-testid="charge">Charged {credits(m.done.charged)}
              {m.done.model ? ` by ${m.done.model}` : ""}{m.done.demo ? " (demo model)" : ""}
              {m.done.broken ? "; the stream broke: charged on an estimate" : ""}
              {m.done.memory ? `; memory: ${m.done.memory.buffered} buffered, ${m.done.memory.summarised} summarised, ` +
                `${m.done.memory.recalled} recalled` : ""}</div>}
          </div>)}
      </div>
      <Problem error={error} />
      <form onSubmit={send}>
        <ModelPicker id="chat-model" value={model} onChange={setModel} preferences />
        <label for="chat-text">Message</label>
        <textarea id="chat-text" ref={box} value={text} onInput={(e) => setText(e.target.value)} required />
        <label for="chat-image">Attach an image for the assistant to look at (at most 10 MB)</label>
        <input id="chat-image" ref={picker} type="file" accept="image/png,image/jpeg,image/webp,image/gif"
          onChange={(e) => { // too large: said now, not after sending 10 MB the server refuses
            const file = e.target.files[0] || null;
            if (file && file.size > MAX_IMAGE) {
              setError(new ApiError(413, { detail: `this image is ${(file.size / 1e6).toFixed(1)} MB: at most 10 MB` }));
              e.target.value = "";
              setImage(null);
              return;
            }
            setImage(file);
          }} />
        <button type="submit" disabled={busy}>{busy ? "Replying…" : "Send"}</button>
      </form>
    </section>
  </div>;
}
