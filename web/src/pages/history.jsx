// The caller's ledger entries, a page at a time, filtered by kind and time; each can be verified in the browser.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { verifyEntry } from "../verify.js";
import { Empty, Loading, Problem, TableFrame, credits, useAction, useLoad, when } from "../ui.jsx";

const KINDS = ["grant", "hold", "settle", "release", "expire", "writeoff"];

// why a hold was released, when it was not simply freed: expired, extended, split (part moved to another task),
// taken back (held again with what a task it lent to did not spend)
const releasedBecause = (e) => e.kind === "release" && e.reason && e.reason !== "released" ? ` (${e.reason})` : "";

/** Where an entry moved the credits, in a few words: an amount alone does not say whether it came or went. */
function effect(e) {
  switch (e.kind) {
    case "grant": return "added to available";
    case "hold": return "available → held";
    case "release": return "held → back to available";
    case "settle": return `charged from held${e.released?.micros ? `; ${credits(e.released)} back to available` : ""}`;
    case "expire": return "expired: left your balance";
    case "writeoff": return "written off (moves no credits)";
    default: return "";
  }
}

// a task id short enough for a table cell: the whole id is the link's title
const shortId = (id) => (id.length > 16 ? `${id.slice(0, 12)}…` : id);

function Verification({ entryId }) {
  const [result, setResult] = useState(null);
  const [run, busy, error] = useAction(async () => setResult(await verifyEntry(entryId)));
  return <div>
    <button type="button" class="secondary" disabled={busy} onClick={run} aria-label={`Verify entry ${entryId}`}>
      {busy ? "Verifying…" : "Verify"}</button>
    <Problem error={error} />
    {result && <div class={result.ok ? "success" : "error"} role="status" data-testid="verification"
      data-ok={String(result.ok)}>
      <strong>{result.ok ? "Verified in your browser" : "Verification FAILED"}</strong>
      <ul class="checks">{result.checks.map((c) => <li key={c.name} data-check={c.name} data-ok={String(c.ok)}>
        <span class={`tag ${c.ok ? "ok" : "bad"}`}>{c.ok ? "✓ passed" : "✗ failed"}</span> {c.what}
        {c.detail ? <>: <span class="mono">{c.detail}</span></> : null}</li>)}</ul>
    </div>}
  </div>;
}

export function HistoryPage() {
  const [kinds, setKinds] = useState([]);
  const [since, setSince] = useState("");
  const [until, setUntil] = useState("");
  const [cursors, setCursors] = useState([null]); // the cursor of each page seen, for going back
  const [filters, setFilters] = useState({ kinds: [], since: "", until: "" });
  const cursor = cursors[cursors.length - 1];
  const page = useLoad(() => {
    const query = new URLSearchParams({ limit: "20" });
    if (cursor) query.set("cursor", cursor);
    if (filters.kinds.length) query.set("kind", filters.kinds.join(","));
    if (filters.since) query.set("since", new Date(filters.since).toISOString());
    if (filters.until) query.set("until", new Date(filters.until).toISOString());
    return api("GET", `/credits/history?${query}`);
  }, [cursor, filters]);
  return <>
    <form class="card" onSubmit={(e) => { e.preventDefault(); setCursors([null]); setFilters({ kinds, since, until }); }}>
      <h2>History</h2>
      <fieldset><legend>Kinds (none ticked: all)</legend><div class="row">
        {KINDS.map((k) => <label key={k} style="font-weight:400"><input type="checkbox" checked={kinds.includes(k)}
          onChange={(e) => setKinds(e.target.checked ? [...kinds, k] : kinds.filter((x) => x !== k))} /> {k}</label>)}
      </div></fieldset>
      <div class="row">
        <div><label for="h-since">From</label><input id="h-since" type="datetime-local" value={since}
          onInput={(e) => setSince(e.target.value)} /></div>
        <div><label for="h-until">Until</label><input id="h-until" type="datetime-local" value={until}
          onInput={(e) => setUntil(e.target.value)} /></div>
        <button type="submit">Apply the filters</button>
      </div>
    </form>
    {page.loading ? <Loading what="entries" /> : page.error ? <Problem error={page.error} /> :
      !page.data.entries.length ? <Empty>No entries{filters.kinds.length || filters.since || filters.until
        ? " match these filters" : " yet"}.</Empty> :
      <TableFrame label="Ledger entries"><table>
        <caption class="visually-hidden">Ledger entries, newest first</caption>
        <thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Kind</th>
          <th scope="col" class="num">Amount</th><th scope="col">With</th>
          <th scope="col" class="num">Available after</th><th scope="col" class="num">Held after</th>
          <th scope="col">Proof</th></tr></thead>
        <tbody>{page.data.entries.map((e) => <tr key={e.id} data-testid="entry" data-entry={e.id}>
          <td>{e.seq}</td><td>{when(e.at)}</td><td><span data-testid="entry-kind">{e.kind}{e.memo?.model ? ` (${e.memo.model})` : ""}{releasedBecause(e)}
          </span><br /><small class="muted" data-testid="entry-effect">{effect(e)}</small></td>
          <td class="num">{credits(e.amount)}</td><td>{e.counterparty}{e.task ? <><br /><a href={`#/tasks/${
            encodeURIComponent(e.task)}`} title={e.task} data-testid="entry-task">task {shortId(e.task)}</a></> : ""}</td>
          <td class="num" data-testid="available-after">{e.balanceAfter ? credits(e.balanceAfter.available) : ""}</td>
          <td class="num" data-testid="held-after">{e.balanceAfter ? credits(e.balanceAfter.held) : ""}</td>
          <td><Verification entryId={e.id} /></td></tr>)}</tbody>
      </table></TableFrame>}
    <div class="row">
      <button type="button" class="secondary" disabled={cursors.length < 2}
        onClick={() => setCursors(cursors.slice(0, -1))}>Newer entries</button>
      <button type="button" class="secondary" disabled={!page.data?.nextCursor}
        onClick={() => setCursors([...cursors, page.data.nextCursor])}>Older entries</button>
    </div>
  </>;
}
