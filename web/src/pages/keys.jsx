// Gateway API keys: create (shown once, with a copy button), optional credit limit, list, revoke.
import { useState } from "preact/hooks";
import { api, newKey } from "../api.js";
import { Empty, Loading, Problem, TableFrame, credits, useAction, useLoad, when } from "../ui.jsx";

export function KeysPage() {
  const keys = useLoad(() => api("GET", "/keys"));
  const [name, setName] = useState("");
  const [limit, setLimit] = useState("");
  const [made, setMade] = useState(null);
  const [copied, setCopied] = useState(false);
  const [create, creating, createError] = useAction(async () => {
    const key = await api("POST", "/keys", { name, ...(limit ? { limit } : {}) }, { idempotencyKey: newKey("key") });
    setMade(key);
    setCopied(false);
    setName("");
    setLimit("");
    await keys.reload();
  });
  const [revoke, revoking, revokeError] = useAction(async (id) => {
    await api("DELETE", `/keys/${id}`);
    await keys.reload();
  });
  return <>
    <form class="card" onSubmit={(e) => { e.preventDefault(); create(); }}>
      <h2>API keys</h2>
      <p>A key <code>cf_…</code> lets any OpenAI client spend your credits through <code>/v1</code>.</p>
      <div class="row">
        <div><label for="key-name">Name</label><input id="key-name" required maxLength={64} value={name}
          onInput={(e) => setName(e.target.value)} /></div>
        <div><label for="key-limit">Credit limit (optional)</label><input id="key-limit" inputMode="decimal"
          pattern="[0-9]+(\.[0-9]{1,6})?" value={limit} onInput={(e) => setLimit(e.target.value)} /></div>
        <button type="submit" disabled={creating}>Create a key</button>
      </div>
      <Problem error={createError} />
      {made && <div class="success" role="status"><strong>Your new key, shown this once:</strong>{" "}
        <code data-testid="new-key">{made.key}</code>{" "}
        <button type="button" class="secondary" onClick={async () => {
          try { await navigator.clipboard.writeText(made.key); setCopied(true); } catch { setCopied(false); }
        }}>Copy</button>{copied ? " Copied." : ""}</div>}
    </form>
    <section class="card" aria-labelledby="keys-title">
      <h2 id="keys-title">Your keys</h2>
      <Problem error={revokeError} />
      {keys.loading ? <Loading what="keys" /> : keys.error ? <Problem error={keys.error} /> :
        !keys.data.keys.length ? <Empty>No keys yet.</Empty> : <TableFrame label="API keys"><table>
          <thead><tr><th scope="col">Name</th><th scope="col">Prefix</th><th scope="col" class="num">Spent</th>
            <th scope="col" class="num">Limit</th><th scope="col">Created</th><th scope="col">Status</th></tr></thead>
          <tbody>{keys.data.keys.map((k) => <tr key={k.id} data-testid="key-row"><td>{k.name}</td>
            <td><code>{k.prefix}</code></td><td class="num">{credits(k.spent)}</td>
            <td class="num">{k.limit ? credits(k.limit) : "none"}</td><td>{when(k.createdAt)}</td>
            <td>{k.revokedAt ? `revoked ${when(k.revokedAt)}` : <button type="button" class="secondary"
              disabled={revoking} aria-label={`Revoke key ${k.name}`} onClick={() => revoke(k.id)}>Revoke</button>}
            </td></tr>)}</tbody></table></TableFrame>}
    </section>
  </>;
}
