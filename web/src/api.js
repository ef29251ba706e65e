// Calls to /api/v1: the bearer token of whoever is signed in, and every error as the problem document's `detail`.
import { currentToken, signOut } from "./auth.js";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.type = (problem.type || "").split("/").pop();
  }
}

export async function problemOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object") return body;
  } catch {
    /* not JSON: said below */
  }
  return { title: response.statusText, status: response.status, detail: `the server answered ${response.status}` +
    (response.statusText ? ` ${response.statusText}` : "") };
}

/** fetch with the caller's token; answers the parsed JSON, or raises an ApiError carrying the problem's detail. */
export async function api(method, path, body, { idempotencyKey, signal, raw } = {}) {
  const headers = {};
  const token = await currentToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const rawBody = body instanceof Blob; // an upload: its bytes as they are
  if (body !== undefined) headers["Content-Type"] = rawBody ? (body.type || "application/octet-stream") :
    "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  let response;
  try {
    response = await fetch(`/api/v1${path}`, { method, headers, signal,
      body: body === undefined ? undefined : rawBody ? body : JSON.stringify(body) });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { title: "Network error", detail: "the server cannot be reached: check the connection " +
      "and try again" });
  }
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401 && token) signOut(problem.detail || "your sign-in has expired");
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export const newKey = (prefix = "web") =>
  `${prefix}-${Date.now().toString(36)}-${crypto.getRandomValues(new Uint32Array(2)).join("")}`.slice(0, 64);

/** Server-sent events from a POST (the chat stream): calls onEvent(name, data) per event. */
export async function postStream(path, body, idempotencyKey, onEvent, signal) {
  const response = await api("POST", path, body, { idempotencyKey, signal, raw: true });
  const type = response.headers.get("Content-Type") || "";
  if (!type.includes("text/event-stream")) {
    onEvent("done", await response.json());
    return;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}
