// Tasks: submitted by writing /requests/{uid}/{id} through Realtime Database's REST protocol, or by POST
// /api/v1/tasks where the server takes no writes there (405); the newest followed live from /tasks/{uid} (state,
// progress: a query, so that a long history is not read whole) and each running one's /streams/{uid}/{id} (tokens);
// a finished task's reply is its result's; cancelled, answered when waiting, with their final charge.
import { useRef, useState } from "preact/hooks";
import { api, ApiError, newKey } from "../api.js";
import { write } from "../realtime.js";
import { Empty, Loading, Problem, credits, useAction, useLoad, when } from "../ui.jsx";
import { LiveStatus, useLive } from "./balance.jsx";
import { ModelPicker } from "./chat.jsx";

const MAX_INPUT_BYTES = 100000; // a task's input as JSON in UTF-8: the server's limit (the rules', in characters)
export const TERMINAL = new Set(["succeeded", "failed", "cancelled", "expired"]);
const SHOWN = 25; // the newest tasks the page follows
const LATEST = { orderBy: "createdAt", limitToLast: SHOWN };
const LIVE_STREAMS = 3; // running tasks whose tokens are followed at once (the server keeps 8 streams a user)

/** Through the bus when it takes writes, else the REST mirror; with `restIfRefused`, the REST mirror too when the
 * database's rules refuse the write. */
async function viaBus(path, value, rest, { restIfRefused = false } = {}) {
  try {
    if (await write(path, value)) return "bus";
  } catch (error) {
    const refused = error.status === 401 || error.status === 403; // the database's rules said no, and not why
    if (refused && restIfRefused) {
      await rest();
      return "rest";
    }
    throw new ApiError(error.problem?.status || error.status || 400, { detail: refused
      ? `the realtime database refused the write (${error.message}): a field is not one its rules accept`
      : error.message });
  }
  await rest();
  return "rest";
}

// a request the bus took with no task made for it this long after: its trigger was lost (Firebase never delivers a
// Realtime Database trigger again, and an instance can die before it records the task)
export const UNANSWERED_MS = 20000;

export async function submitTask(uid, request) {
  const id = newKey("task").replace(/[^A-Za-z0-9_-]/g, "");
  const rest = () => api("POST", "/tasks", request, { idempotencyKey: id });
  // the database's clock, not this computer's: the rules refuse a createdAt later than their `now`, and a clock a
  // second fast had every request refused
  const how = await viaBus(`requests/${uid}/${id}`, { ...request, createdAt: { ".sv": "timestamp" } }, rest);
  if (how === "bus") setTimeout(() => sendAgainIfLost(id, rest), UNANSWERED_MS);
  return { id, how };
}

/** The request sent again through the REST API, under the same id, when no task was made for it: one task in the
 * end, whichever of the two arrives first (the id is the task's, and the REST API's Idempotency-Key). */
async function sendAgainIfLost(id, rest) {
  try {
    await api("GET", `/tasks/${id}`);
  } catch (error) {
    if (error.status === 404) await rest().catch(() => {}); // what goes wrong shows on the task, or not at all
  }
}

function streamText(pieces) {
  return Object.keys(pieces || {}).sort().map((k) => pieces[k].text || "").join("");
}

/** A link to the packs after a task's failure for want of credits (the chat's 402 has the same). */
export const BuyCredits = ({ error }) =>
  (error?.type === "insufficient-funds" ? <>{" "}<a href="#/payments">Buy credits</a></> : null);

/** A task; with `live`, its tokens as they are written (a finished task's reply is in its result). */
export function TaskCard({ task, uid, live = true, onChanged }) {
  const [pieces] = useLive(live && !TERMINAL.has(task.state) ? `streams/${uid}/${task.id}` : null);
  const [act, busy, error] = useAction(async (what, body) => {
    const path = `requests/${uid}/${task.id}/${what === "cancel" ? "cancel" : "answer"}`;
    // a task made through the REST API (an API client's, the images page's, an agent's) has no request on the bus to
    // write under: the rules refuse, and the REST API takes it
    await viaBus(path, what === "cancel" ? true : body.answer,
      () => api("POST", `/tasks/${task.id}/${what}`, what === "cancel" ? undefined : body), { restIfRefused: true });
    if (onChanged) onChanged();
  });
  const percent = Math.round(100 * (task.progress?.fraction || 0));
  const reply = TERMINAL.has(task.state) && typeof task.result?.text === "string" ? task.result.text : null;
  const said = reply ?? streamText(pieces);
  const final = Object.values(pieces || {}).find((p) => p.final);
  const images = task.kind === "image" && Array.isArray(task.result?.images) ? task.result.images.length : 0;
  return <article class="card" aria-label={`Task ${task.id}`} data-testid="task" data-state={task.state}>
    <h3>{task.kind} task <code>{task.id}</code></h3>
    {task.startedBy && <p data-testid="task-started-by">Started by <a href={`#/tasks/${
      encodeURIComponent(task.startedBy)}`}>task {task.startedBy}</a></p>}
    {task.agent && <p data-testid="task-agent">Agent: <strong>{task.agent}</strong></p>}
    <p>State: <strong data-testid="task-state">{task.state}</strong>
      {task.route ? ` (${task.route}${task.routeReason ? `: ${task.routeReason}` : ""})` : ""}</p>
    <label for={`p-${task.id}`}>Progress: <span data-testid="task-percent">{percent} %</span>
      {task.progress?.message ? ` — ${task.progress.message}` : ""}</label>
    <progress id={`p-${task.id}`} max="100" value={percent}>{percent} %</progress>
    <p>Estimate {credits(task.estimate)}, held {credits(task.reserved)}, charged{" "}
      <strong data-testid="task-charged">{credits(task.charged)}</strong>
      {task.outcome ? ` (${task.outcome === "settled" ? "charged" : "hold freed"})` : ""}</p>
    {said && <div class="msg" aria-label="Live output" data-testid="task-output">{said}</div>}
    {final && final.charged != null && <p class="muted">Stream finished.</p>}
    {task.error && <div class="error">Failed: {task.error.detail || task.error.title}
      <BuyCredits error={task.error} /></div>}
    {images > 0 && <p data-testid="task-images">{images === 1 ? "1 image" : `${images} images`} made:{" "}
      <a href="#/images">see {images === 1 ? "it" : "them"} in Images</a></p>}
    {task.result && <details><summary>Result</summary><pre class="mono">{JSON.stringify(task.result, null, 2)}</pre></details>}
    {task.state === "waiting" && <div role="group" aria-label="The task's question">
      <p><strong>The task asks:</strong> {task.question || "may it go on?"}</p>
      <button type="button" disabled={busy} onClick={() => act("answer", { answer: true })}>Approve</button>{" "}
      <button type="button" class="secondary" disabled={busy}
        onClick={() => act("answer", { answer: false })}>Decline</button>
    </div>}
    {!TERMINAL.has(task.state) && <button type="button" class="secondary" disabled={busy}
      onClick={() => act("cancel")}>Cancel this task</button>}
    <Problem error={error} />
    <p class="muted">Created {when(task.createdAt)}, updated {when(task.updatedAt)}</p>
  </article>;
}

function TaskForm({ uid, onSubmitted }) {
  const [kind, setKind] = useState("chat");
  const [input, setInput] = useState("");
  const [model, setModel] = useState("");
  const [max, setMax] = useState("");
  const [ask, setAsk] = useState(false);
  const [agent, setAgent] = useState(""); // "": the classifier chooses from the goal
  const [done, setDone] = useState(null);
  const box = useRef(null); // the prompt: focus goes back to it on submitting, not to the page (the button is disabled)
  const [submit, busy, error] = useAction(async () => {
    if (!input.trim()) { // `required` lets spaces through, and the bus would make a failed task of them
      const what = kind === "agent" ? "a goal" : "a prompt";
      throw new ApiError(422, { detail: `write ${what} first: this one is only spaces` });
    }
    if (max && !(Number(max) > 0)) throw new ApiError(422, { detail: "the most it may cost must be more than 0 credits" });
    const asking = kind === "agent" && ask; // an agent that asks before passing its limit: {goal, approval}
    const named = kind === "agent" && agent;
    const request = { kind, input: asking || named ? { goal: input, ...(asking ? { approval: true } : {}),
      ...(named ? { agent } : {}) } : input, ...(model ? { model } : {}),
      ...(max ? { maxCredits: max } : {}) };
    const size = new TextEncoder().encode(JSON.stringify(request.input)).length; // as the server counts it
    if (size > MAX_INPUT_BYTES) { // else the rules' refusal, which names no field, or a task failed for it
      throw new ApiError(413, { detail: `the ${kind === "agent" ? "goal" : "prompt"} is ${(size / 1000).toFixed(1)} ` +
        `KB: a task takes at most ${MAX_INPUT_BYTES / 1000} KB` });
    }
    const result = await submitTask(uid, request);
    setDone(result);
    setInput("");
    onSubmitted(result);
  });
  return <form class="card" onSubmit={(e) => { e.preventDefault(); box.current.focus(); submit(); }}>
    <h2>New task</h2>
    <div class="row">
      <div><label for="task-kind">Kind</label>
        <select id="task-kind" value={kind} onChange={(e) => setKind(e.target.value)}>
          <option value="chat">chat</option><option value="agent">agent</option></select></div>
      <div><label for="task-max">Most it may cost (credits, optional)</label>
        <input id="task-max" inputMode="decimal" pattern="[0-9]{1,12}(\.[0-9]{1,6})?" value={max}
          title="a number of credits, like 2.5: at most 12 digits before the point and 6 after"
          onInput={(e) => setMax(e.target.value)} /></div>
    </div>
    {kind === "agent" && <><label for="task-agent">Agent</label>
      <select id="task-agent" value={agent} onChange={(e) => setAgent(e.target.value)}>
        <option value="">chosen from the goal</option><option value="research">research</option>
        <option value="code">code</option><option value="analysis">analysis</option></select></>}
    {kind === "agent" && <label style="font-weight:400"><input type="checkbox" checked={ask}
      onChange={(e) => setAsk(e.target.checked)} /> Ask me before it spends past its limit (else it stops there
      with what it has)</label>}
    <ModelPicker id="task-model" value={model} onChange={setModel} preferences />
    <label for="task-input">{kind === "agent" ? "Goal" : "Prompt"}</label>
    <textarea id="task-input" ref={box} required value={input} onInput={(e) => setInput(e.target.value)} />
    <button type="submit" disabled={busy}>{busy ? "Submitting…" : "Submit the task"}</button>
    {done && <p class="success" role="status">Submitted task {done.id} ({done.how === "bus" ? "through the realtime bus"
      : "through the REST API"}).</p>}
    <Problem error={error} />
  </form>;
}

/** Tasks past the newest SHOWN, a page at a time from the REST API: read once, not followed (they are rarely running).
 * The first page starts past the oldest task followed: a cursor is `createdAt|id` of the last task before it. */
function OlderTasks({ uid, followed, oldest }) {
  const [older, setOlder] = useState({ tasks: [], cursor: undefined });
  const [more, busy, error] = useAction(async () => {
    const cursor = older.cursor ?? `${oldest.createdAt}|${oldest.id}`; // the oldest followed as the first is asked
    const page = await api("GET", `/tasks?limit=${SHOWN}&cursor=${encodeURIComponent(cursor)}`);
    setOlder({ tasks: [...older.tasks, ...page.tasks], cursor: page.nextCursor });
  });
  const shown = older.tasks.filter((task) => !followed.has(task.id));
  return <>
    <p class="muted">Your newest {SHOWN} tasks are followed live{shown.length ? `; ${shown.length} older below` : ""}.</p>
    {shown.map((task) => <TaskCard key={task.id} task={task} uid={uid} live={false} />)}
    <Problem error={error} />
    {older.cursor !== null ? <button type="button" class="secondary" disabled={busy} onClick={() => more()}>
      {busy ? "Loading…" : "Older tasks"}</button> : <p class="muted">No older tasks.</p>}
  </>;
}

export function TasksPage({ session, taskId }) {
  const [tasks, live] = useLive(taskId ? `tasks/${session.uid}/${taskId}` : `tasks/${session.uid}`,
    taskId ? null : LATEST);
  const one = useLoad(() => (taskId ? api("GET", `/tasks/${encodeURIComponent(taskId)}`) : null), [taskId]);
  if (taskId) {
    const task = tasks || one.data;
    return <>
      <p><a href="#/tasks">All tasks</a></p>
      <LiveStatus {...live} />
      {one.error ? <Problem error={one.error} /> : !task ? <Loading what="the task" /> :
        <TaskCard task={task} uid={session.uid} />}
    </>;
  }
  const list = Object.values(tasks || {}).sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
  const running = new Set(list.filter((t) => !TERMINAL.has(t.state)).slice(0, LIVE_STREAMS).map((t) => t.id));
  const followed = new Set(list.map((t) => t.id));
  return <>
    <TaskForm uid={session.uid} onSubmitted={() => {}} />
    <section aria-labelledby="tasks-title">
      <h2 id="tasks-title">Your tasks</h2>
      <LiveStatus {...live} />
      {tasks === null && live.status === "connecting" ? <Loading what="tasks" /> : !list.length ?
        <Empty>No tasks yet.</Empty> : list.map((task) => <TaskCard key={task.id} task={task} uid={session.uid}
          live={running.has(task.id)} />)}
      {list.length >= SHOWN && <OlderTasks uid={session.uid} followed={followed} oldest={list[list.length - 1]} />}
    </section>
  </>;
}
