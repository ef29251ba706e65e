// What both pages share: the shell (skip link, header, navigation, who is signed in), the sign-in form, the hash
// router, and small pieces (an API error as its problem's detail, loading and empty states, money).
import { render } from "preact";
import { useEffect, useState, useCallback } from "preact/hooks";
import { devSignIn, firebaseAuth, getSession, onSession, signOut, useToken, webConfig } from "./auth.js";
import { keepFocus } from "./focus.js";

/** An amount as the API shows it ({credits, micros}) or as the realtime mirror does (integer micro-credits). */
export function credits(money) {
  if (money == null) return "—";
  if (typeof money === "number") return `${(money / 1e6).toFixed(6).replace(/\.?0+$/, "")} cr`;
  return `${money.credits} cr`;
}
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

export function useRoute() {
  const read = () => location.hash.replace(/^#\/?/, "").split("?")[0] || "";
  const [route, setRoute] = useState(read());
  useEffect(() => {
    const changed = () => setRoute(read());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}

/** The query of the hash route (`#payments?paid=1`), kept current as the hash changes. */
export function useHashQuery() {
  const read = () => new URLSearchParams(location.hash.split("?")[1] || "");
  const [query, setQuery] = useState(read());
  useEffect(() => {
    const changed = () => setQuery(read());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return query;
}

export function useSession() {
  const [state, setState] = useState({ session: getSession(), reason: null });
  useEffect(() => onSession((session, reason) => setState({ session, reason })), []);
  return state;
}

/** Load data once (and again on `reload()`): { data, error, loading, reload }. */
export function useLoad(load, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const run = useCallback(async () => {
    setState((s) => ({ ...s, loading: true, error: null }));
    try {
      setState({ data: await load(), error: null, loading: false });
    } catch (error) {
      setState({ data: null, error, loading: false });
    }
  }, deps);
  useEffect(() => { run(); }, [run]);
  return { ...state, reload: run };
}

export function Problem({ error }) {
  if (!error) return null;
  // too few credits: the problem names the packs that would cover it, so the way to buy them is one click away
  const buy = error.status === 402 && Array.isArray(error.problem?.packs) && error.problem.packs.length > 0;
  const cap = error.type === "over-request-limit"; // the user's own per-request cap: changed where it was set
  return <div class="error" role="alert"><strong>Error{error.status ? ` ${error.status}` : ""}:</strong>{" "}
    {error.message}{buy && <>{" "}<a href="#/payments">Buy credits</a></>}
    {cap && <>{" "}<a href="#/settings">Change the limit in Preferences</a></>}</div>;
}

export const Loading = ({ what = "" }) => <p role="status" class="muted">Loading{what ? ` ${what}` : ""}…</p>;
export const Empty = ({ children }) => <p class="muted">{children}</p>;

/** A table's frame: a table wider than the screen scrolls in it, which the keyboard can do too (it takes focus). */
export const TableFrame = ({ label, children }) =>
  <div class="table-wrap" tabindex="0" role="region" aria-label={label}>{children}</div>;

/** Run an action with a busy flag and its error shown: [run, busy, error, clear]. */
export function useAction(action) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async (...args) => {
    setBusy(true);
    setError(null);
    try {
      return await action(...args);
    } catch (caught) {
      setError(caught);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return [run, busy, error, () => setError(null)];
}

function SignIn({ reason }) {
  const [cfg, setCfg] = useState(null);
  const [uid, setUid] = useState("");
  const [pasted, setPasted] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState(null);
  const readConfig = () => { setCfg(null); webConfig().then(setCfg); };
  useEffect(readConfig, []);
  const attempt = (fn) => async (event) => {
    event.preventDefault();
    setError(null);
    try { await fn(); } catch (caught) { setError(caught); }
  };
  if (!cfg) return <Loading what="sign-in" />;
  if (cfg.unreachable) {
    return <div><h2>Sign in</h2>
      <div class="error" role="alert">Cannot offer a way to sign in: {cfg.unreachable}. Check the connection, then{" "}
        <button type="button" class="secondary" onClick={readConfig}>try again</button></div></div>;
  }
  return <div>
    <h2>Sign in</h2>
    {reason && <div class="notice" role="status">Signed out: {reason}</div>}
    <Problem error={error} />
    {cfg.firebase && <form class="card" onSubmit={attempt(async () => {
      const fb = await firebaseAuth();
      await fb.signIn(email, password);
    })}>
      <h3>With your account</h3>
      <label for="email">Email</label><input id="email" type="email" autocomplete="username" required
        value={email} onInput={(e) => setEmail(e.target.value)} />
      <label for="password">Password</label><input id="password" type="password" autocomplete="current-password"
        required value={password} onInput={(e) => setPassword(e.target.value)} />
      <div class="row"><button type="submit">Sign in</button>
        <button type="button" class="secondary" onClick={attempt(async () => {
          const fb = await firebaseAuth();
          await fb.signUp(email, password);
        })}>Create an account</button></div>
    </form>}
    {cfg.devSignIn && <section class="card" aria-labelledby="dev-title">
      <h3 id="dev-title">Local runtime: dev sign-in</h3>
      <p>This is the <strong>local runtime's dev sign-in</strong>: it issues a dev token for any user id, on this
        machine only. It is not how people sign in on a deployed app.</p>
      <form onSubmit={attempt(() => devSignIn(uid.trim()))}>
        <label for="dev-uid">User id</label>
        <div class="row"><input id="dev-uid" required pattern="[A-Za-z0-9][A-Za-z0-9_@\-]{0,127}"
          title="1-128 letters, digits, _, @ or -, starting with a letter or digit" value={uid}
          onInput={(e) => setUid(e.target.value)} />
        <button type="submit">Sign in as this user</button></div>
      </form>
      <form onSubmit={attempt(() => useToken(pasted, "pasted"))}>
        <label for="dev-token">Or paste a token (an admin's: <code>./creditflow dev-token UID --admin</code>)</label>
        <div class="row"><input id="dev-token" required value={pasted} autocomplete="off"
          onInput={(e) => setPasted(e.target.value)} style="min-width:16em" />
        <button type="submit">Use this token</button></div>
      </form>
    </section>}
    {!cfg.firebase && !cfg.devSignIn && <div class="notice">No way to sign in is configured here: the server
      offers neither a Firebase project nor the local dev sign-in.</div>}
  </div>;
}

export function Shell({ title, links, route, children, other }) {
  const { session, reason } = useSession();
  return <>
    <a class="skip" href="#main-content" onClick={(e) => {
      e.preventDefault();
      document.getElementById("main-content").focus();
    }}>Skip to content</a>
    <header class="top">
      <h1>{title}</h1>
      {session && <nav aria-label="Main"><ul>{links.map(([href, label]) =>
        <li key={href}><a href={`#/${href}`} aria-current={route === href ? "page" : undefined}>{label}</a></li>)}
      </ul></nav>}
      <div class="who">
        {other}
        {session && <span>Signed in as <strong>{session.uid}</strong>{session.admin ? " (admin)" : ""}</span>}
        {session && <button type="button" class="secondary" onClick={() => signOut()}>Sign out</button>}
      </div>
    </header>
    <main id="main-content" tabIndex={-1}>
      {session ? children(session) : <SignIn reason={reason} />}
    </main>
  </>;
}

export function mount(App) {
  keepFocus(); // a button disabled or removed by its action leaves the focus near it, not on <body>
  render(<App />, document.getElementById("root"));
}
