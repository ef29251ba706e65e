// Realtime Database's REST streaming protocol (EventSource on {base}/{path}.json?auth=TOKEN): `put` and `patch`
// events applied to a local copy, `keep-alive`, `cancel` (no longer readable), `auth_revoked` (a new token is
// needed). The same code reads the local runtime's /realtime tree and Firebase's database URL.
import { currentToken, webConfig } from "./auth.js";
import { problemOf } from "./api.js";

export function setAt(tree, path, data) {
  const parts = path.split("/").filter(Boolean);
  if (!parts.length) return data;
  const root = tree && typeof tree === "object" ? { ...tree } : {};
  let node = root;
  for (const [i, part] of parts.entries()) {
    if (i === parts.length - 1) {
      if (data === null) delete node[part];
      else node[part] = data;
    } else {
      node[part] = node[part] && typeof node[part] === "object" ? { ...node[part] } : {};
      node = node[part];
    }
  }
  return root;
}

/** The REST URL of `path`; `query` adds a query's parameters ({orderBy: "createdAt", limitToLast: 25}). */
export async function realtimeUrl(path, query = null) {
  const cfg = await webConfig();
  // the emulator's database is named by a query parameter (http://host:port?ns=…): it follows the path's .json
  const [where, ns] = (cfg.realtime || "/realtime").split("?");
  const base = where.replace(/\/$/, "");
  const token = await currentToken();
  const asked = Object.entries(query || {}).map(([name, value]) =>
    `&${name}=${encodeURIComponent(typeof value === "string" ? JSON.stringify(value) : String(value))}`).join("");
  return `${base}/${path.replace(/^\//, "")}.json?auth=${encodeURIComponent(token || "")}${ns ? `&${ns}` : ""}${asked}`;
}

/**
 * Watch a path (or a query of it: see realtimeUrl): onValue(value) after every change; onStatus(state, detail) with
 * state one of "connecting", "live", "lost" (reconnecting), "reconnected", "refused" (with the server's reason).
 * Returns a function that stops.
 */
export function watch(path, onValue, onStatus = () => {}, query = null) {
  let source = null;
  let value = null;
  let stopped = false;
  let failures = 0;
  let wasLost = false;
  let timer = null;

  const retryLater = () => {
    if (stopped) return;
    clearTimeout(timer);
    const delay = Math.min(10000, 250 * 2 ** Math.min(failures, 6));
    failures += 1;
    timer = setTimeout(open, delay);
  };

  async function open() {
    if (stopped) return;
    onStatus(wasLost ? "lost" : "connecting");
    const url = await realtimeUrl(path, query);
    if (stopped) return;
    source = new EventSource(url);
    source.addEventListener("open", () => {
      failures = 0;
      onStatus(wasLost ? "reconnected" : "live");
      wasLost = false;
    });
    source.addEventListener("put", (event) => {
      const { path: where, data } = JSON.parse(event.data);
      value = setAt(value, where, data);
      onValue(value);
    });
    source.addEventListener("patch", (event) => {
      const { path: where, data } = JSON.parse(event.data);
      for (const [key, child] of Object.entries(data || {})) value = setAt(value, `${where}/${key}`, child);
      onValue(value);
    });
    source.addEventListener("auth_revoked", () => { // the token expired: open again with a fresh one
      source.close();
      retryLater();
    });
    source.addEventListener("cancel", () => {
      source.close();
      onStatus("refused", `you may no longer read ${path}`);
    });
    source.onerror = async () => {
      if (stopped) return;
      wasLost = true;
      onStatus("lost");
      if (source.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
      // closed for good: the server refused, or cannot be reached. Ask why, without keeping a stream open.
      const probe = new AbortController();
      try {
        const response = await fetch(url, { signal: probe.signal, headers: { Accept: "text/event-stream" } });
        // a refusal, which asking again will not change (a path no database can hold is a 400); not a 408 or 429
        if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) {
          const problem = await problemOf(response);
          onStatus("refused", problem.detail || `the server answered ${response.status}`);
          return;
        }
        probe.abort();
      } catch { /* unreachable: retry */ }
      retryLater();
    };
  }

  open();
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (source) source.close();
  };
}

/**
 * Write a value through the REST protocol (PUT {base}/{path}.json?auth=TOKEN). Answers true when written, false
 * when the server does not take writes there (405: the caller then uses the REST API); other refusals raise.
 */
export async function write(path, data) {
  const response = await fetch(await realtimeUrl(path), { method: "PUT", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(data) });
  if (response.status === 405 || response.status === 404) return false;
  if (!response.ok) {
    const problem = await problemOf(response);
    const error = new Error(problem.detail || problem.error || `the server answered ${response.status}`);
    error.problem = problem;
    error.status = response.status;
    throw error;
  }
  return true;
}
