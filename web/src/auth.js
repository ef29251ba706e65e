// Who is signed in. Two ways in: the Firebase Auth JS SDK (production, and the local runtime beside the Auth
// emulator), loaded only where it is configured; or the local runtime's dev sign-in (a dev token it issues on
// loopback), where a pasted token (e.g. an admin's from `./creditflow dev-token UID --admin`) is accepted too.
const KEY = "creditflow.session";
const listeners = new Set();
let session = load();
let firebase = null; // the lazily loaded Firebase module, once configured
let config = null; // a promise of what the server offers

function load() {
  try {
    const stored = JSON.parse(localStorage.getItem(KEY) || "null");
    return stored && stored.kind === "token" ? stored : null;
  } catch {
    return null;
  }
}

export function claimsOf(token) {
  const part = String(token).split(".")[1];
  if (!part) throw new Error("this is not a token (a token has three parts separated by dots)");
  let claims;
  try {
    claims = JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=")));
  } catch {
    throw new Error("this is not a token (its middle part is not base64url-encoded JSON)");
  }
  if (!claims || !claims.sub) throw new Error("this token names no user (no sub claim)");
  return claims;
}

function notify(reason) {
  for (const listener of listeners) listener(session, reason);
}

export function onSession(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export const getSession = () => session;

/** Use a token: checked only for its shape here; the server says whether it is valid, on first use. */
export function useToken(token, how = "dev") {
  const claims = claimsOf(token.trim());
  session = { kind: "token", how, token: token.trim(), uid: claims.sub, admin: claims.admin === true,
    expires: claims.exp ? claims.exp * 1000 : null };
  localStorage.setItem(KEY, JSON.stringify(session));
  notify();
}

export async function currentToken() {
  if (session && session.how === "firebase" && firebase) return (await firebase.idToken()) || session.token;
  return session ? session.token : null;
}

export function signOut(reason) {
  session = null;
  localStorage.removeItem(KEY);
  if (firebase) firebase.signOut().catch(() => {});
  notify(reason);
}

/** What the server offers: { runtime, devSignIn, realtime, firebase }. */
export function webConfig() {
  if (!config) { // one request, however many ask at once; not kept when the server could not be read (asked again)
    config = readConfig().then((found) => {
      if (found.unreachable) config = null;
      return found;
    });
  }
  return config;
}

async function readConfig() {
  let found = {};
  try {
    const response = await fetch("/api/v1/web/config");
    if (response.ok) found = await response.json();
    else found = { unreachable: `the server answered ${response.status}` };
  } catch {
    found = { unreachable: "the server cannot be reached" }; // offline, or the server is down: not "no way to sign in"
  }
  if (!found.firebase && found.runtime === "firebase") {
    try { // Firebase Hosting serves the project's web config here
      const init = await fetch("/__/firebase/init.json");
      if (init.ok) found.firebase = await init.json();
    } catch { /* none: sign-in says so */ }
  }
  return found;
}

export async function devSignIn(uid) {
  const response = await fetch("/api/v1/dev/sign-in", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ uid }) });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `the server answered ${response.status}`);
  useToken(body.token, "dev");
}

let starting = null;

/** The Firebase Auth SDK, bundled as its own chunk, loaded (once) only when the server names a Firebase project. */
export function firebaseAuth() {
  if (!starting) starting = startFirebase().catch((error) => { starting = null; throw error; });
  return starting;
}

async function startFirebase() {
  const cfg = await webConfig();
  if (!cfg.firebase) throw new Error("no Firebase project is configured for this app");
  const module = await import("./firebase-auth.js");
  firebase = await module.start(cfg.firebase, cfg.authEmulator, (user, token) => {
    if (user && token) {
      const claims = claimsOf(token);
      session = { kind: "token", how: "firebase", token, uid: user.uid, admin: claims.admin === true,
        expires: claims.exp * 1000 };
      localStorage.setItem(KEY, JSON.stringify(session));
      notify();
    }
  });
  return firebase;
}

// A Firebase session outlives the page: the SDK restores its user (and refreshes the ID token) on the next load.
// another tab signed in or out: this one follows (a tab signed out elsewhere kept working until reloaded)
window.addEventListener("storage", (event) => {
  if (event.key !== KEY && event.key !== null) return;
  const now = load();
  if ((now && now.token) === (session && session.token)) return;
  session = now;
  notify(now ? undefined : "signed out in another tab");
});

if (session && session.how === "firebase") firebaseAuth().catch(() => signOut("Firebase sign-in is not available here"));
