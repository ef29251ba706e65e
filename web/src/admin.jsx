// The operators' console (admin claim): usage over time with charts, ledger health, models, dead letters,
// shortfalls, payments (revenue by card and crypto, parked deposits to resolve), and user lookup with balance,
// history and a grant form.
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { api, newKey } from "./api.js";
import { checkConsistency, openCheckpoint, trustedKeys } from "./verify.js";
import { Empty, Loading, Problem, TableFrame, Shell, credits, mount, useAction, useLoad, useRoute, when } from "./ui.jsx";
import { price } from "./pages/payments.jsx";
import { units } from "./pages/crypto.jsx";

const LINKS = [["", "Usage"], ["ledger", "Ledger health"], ["models", "Models"], ["dead-letters", "Dead letters"],
  ["shortfalls", "Shortfalls"], ["payments", "Payments"], ["users", "Users"]];
const isoDay = (d) => d.toISOString().slice(0, 10);
const daysAgo = (n) => isoDay(new Date(Date.now() - n * 86400000));

function Chart({ days, series, title }) {
  const box = useRef(null);
  useEffect(() => {
    if (!box.current || !days.length) return undefined;
    const xs = days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
    const names = Object.keys(series);
    const palette = ["#0b57d0", "#b3261e", "#146c2e", "#7a4f00", "#6a1b9a", "#00695c", "#37474f"];
    const dashes = [undefined, [6, 3], [2, 3], [10, 4, 2, 4]]; // told apart by line style too, not colour alone
    const plot = new uPlot({
      title, width: Math.max(280, box.current.clientWidth), height: 260,
      series: [{}, ...names.map((name, i) => ({ label: name, stroke: palette[i % palette.length], width: 2,
        dash: dashes[i % dashes.length], value: (u, v) => (v == null ? "—" : `${(v / 1e6).toFixed(6)} cr`) }))],
      axes: [{}, { values: (u, ticks) => ticks.map((v) => `${+(v / 1e6).toFixed(6)}`), label: "credits" }],
    }, [xs, ...names.map((name) => series[name].map((day) => day.micros))], box.current);
    return () => plot.destroy();
  }, [days, series, title]);
  return <div ref={box} role="img" aria-label={`${title}: the table below gives the same figures`}
    data-testid="chart" />;
}

/** The first and last day of a range (UTC dates), as two labelled date inputs. */
function DayRange({ id, from, to, setFrom, setTo }) {
  return <>
    <div><label for={`${id}-from`}>From</label><input id={`${id}-from`} type="date" value={from} required
      onInput={(e) => setFrom(e.target.value)} /></div>
    <div><label for={`${id}-to`}>To</label><input id={`${id}-to`} type="date" value={to} required
      onInput={(e) => setTo(e.target.value)} /></div>
  </>;
}

function UsagePage() {
  const [from, setFrom] = useState(daysAgo(29));
  const [to, setTo] = useState(daysAgo(0));
  const [by, setBy] = useState("category");
  const [asked, setAsked] = useState({ from: daysAgo(29), to: daysAgo(0), by: "category" });
  const data = useLoad(() => api("GET", `/admin/analytics?${new URLSearchParams(asked)}`), [asked]);
  const preset = (n) => { setFrom(daysAgo(n - 1)); setTo(daysAgo(0)); setAsked({ from: daysAgo(n - 1), to: daysAgo(0), by }); };
  return <>
    <form class="card" onSubmit={(e) => { e.preventDefault(); setAsked({ from, to, by }); }}>
      <h2>Usage over time</h2>
      <div class="row">
        <DayRange id="u" from={from} to={to} setFrom={setFrom} setTo={setTo} />
        <div><label for="u-by">Grouped by</label><select id="u-by" value={by} onChange={(e) => setBy(e.target.value)}>
          <option value="day">day</option><option value="category">category</option><option value="model">model</option>
        </select></div>
        <button type="submit">Show</button>
      </div>
      <div class="row" role="group" aria-label="Quick ranges">
        {[7, 30, 90].map((n) => <button key={n} type="button" class="secondary" onClick={() => preset(n)}>
          Last {n} days</button>)}
      </div>
    </form>
    {data.loading ? <Loading what="usage" /> : data.error ? <Problem error={data.error} /> : <section class="card">
      <p>Charged <strong data-testid="usage-total">{credits(data.data.charged)}</strong> in {data.data.settles}{" "}
        settled calls ({data.data.releases} holds released), {data.data.from} to {data.data.to}.</p>
      {!data.data.groups.length ? <Empty>No usage in this range.</Empty> : <>
        <Chart days={data.data.days} series={data.data.series} title={`Credits charged per day, by ${data.data.by}`} />
        <TableFrame label="Totals"><table>
          <caption>Totals by {data.data.by}</caption>
          <thead><tr><th scope="col">{data.data.by}</th><th scope="col" class="num">Charged</th></tr></thead>
          <tbody>{data.data.groups.map((g) => <tr key={g.key}><td>{g.key}</td>
            <td class="num">{credits(g.charged)}</td></tr>)}</tbody></table></TableFrame>
      </>}
    </section>}
  </>;
}

function LedgerPage() {
  const [audit, setAudit] = useState(null);
  const [runAudit, auditing, auditError] = useAction(async () => setAudit(await api("GET", "/credits/audit")));
  const latest = useLoad(async () => {
    const [note, published] = await Promise.all([api("GET", "/ledger/checkpoint"), api("GET", "/ledger/public-keys")]);
    const { keys, said } = trustedKeys(published);
    return { note, keys, checkpoint: openCheckpoint(note, keys, said) };
  });
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [consistency, setConsistency] = useState(null);
  const [check, checking, checkError] = useAction(async () => {
    const [proof, published] = await Promise.all([
      api("GET", `/ledger/consistency?from=${from}${to ? `&to=${to}` : ""}`), api("GET", "/ledger/public-keys")]);
    const { keys, said } = trustedKeys(published);
    const ok = checkConsistency(proof, keys, said); // against the signed checkpoints, not the roots sent with them
    setConsistency({ ...proof, checkedHere: ok });
  });
  return <>
    <section class="card" aria-labelledby="audit-title">
      <h2 id="audit-title">Audit the whole ledger</h2>
      <p>Conservation, every balance, chain, signature, the Merkle log, every checkpoint and the usage rollups.</p>
      <button type="button" onClick={runAudit} disabled={auditing}>{auditing ? "Auditing…" : "Run an audit"}</button>
      <Problem error={auditError} />
      {audit && <div class={audit.ok ? "success" : "error"} role="status" data-testid="audit">
        <strong>{audit.ok ? "The audit passed" : "The audit FAILED"}</strong>: {audit.accounts} accounts,{" "}
        {audit.entries} entries, tree of {audit.treeSize}, last checkpoint {audit.checkpointSize ?? "none"}.
        {audit.findings.length ? <ul>{audit.findings.map((f, i) => <li key={i}>[{f.severity}] {f.check}: {f.detail}</li>)}</ul> : null}
      </div>}
    </section>
    <section class="card" aria-labelledby="cp-title">
      <h2 id="cp-title">Latest signed checkpoint</h2>
      {latest.loading ? <Loading what="the checkpoint" /> : latest.error ? <Problem error={latest.error} /> : <>
        <p class="success">Its signature verifies in this browser with key {latest.data.checkpoint.keyId}: a tree
          of <strong>{latest.data.checkpoint.size}</strong> entries.</p>
        <pre class="mono">{latest.data.note}</pre></>}
    </section>
    <form class="card" onSubmit={(e) => { e.preventDefault(); check(); }}>
      <h2>Consistency between two checkpoints</h2>
      <div class="row">
        <div><label for="c-from">Older tree size</label><input id="c-from" inputMode="numeric" pattern="[0-9]+"
          required value={from} onInput={(e) => setFrom(e.target.value)} /></div>
        <div><label for="c-to">Newer tree size (empty: the latest)</label><input id="c-to" inputMode="numeric"
          pattern="[0-9]+" value={to} onInput={(e) => setTo(e.target.value)} /></div>
        <button type="submit" disabled={checking}>Check</button>
      </div>
      <Problem error={checkError} />
      {consistency && <p class={consistency.checkedHere ? "success" : "error"} role="status">
        {consistency.checkedHere ? "Consistent" : "NOT consistent"} (checked in this browser): tree {consistency.from} →{" "}
        {consistency.to}, {consistency.proof.length} proof hashes.</p>}
    </form>
  </>;
}

const isImageModel = (m) => m.capabilities.includes("image");

/** An image model's example prices: its tokens prices are not what it charges. */
function ImagePrices({ model }) {
  if (!model.imagePrices.length) return <span class="muted">no example prices</span>;
  return <ul class="plain">{model.imagePrices.map((p) => <li key={`${p.size}-${p.steps}`}>
    {p.price.credits} cr an image at {p.size}, {p.steps} steps</li>)}</ul>;
}

function ModelsPage() {
  const models = useLoad(() => api("GET", "/admin/models"));
  const health = useLoad(() => api("GET", "/admin/models/health"));
  const [prices, setPrices] = useState({});
  const [put, busy, error] = useAction(async (body) => {
    await api("PUT", "/admin/models", body);
    await models.reload();
  });
  if (models.loading) return <Loading what="models" />;
  if (models.error) return <Problem error={models.error} />;
  return <section class="card"><h2>Models</h2><Problem error={error} />
    <TableFrame label="Models"><table>
      <thead><tr><th scope="col">Model</th><th scope="col">Status</th><th scope="col">Health</th>
        <th scope="col">Price</th><th scope="col">Reprice input</th></tr></thead>
      <tbody>{models.data.models.map((m) => {
        const h = health.data?.models?.[m.id];
        return <tr key={m.id} data-testid="model-row"><td><strong>{m.id}</strong><br />
          <span class="muted">{m.provider}{m.demo ? ", demo" : ""}; {m.source}</span></td>
          <td>{m.enabled ? "enabled" : "disabled"}<br /><button type="button" class="secondary" disabled={busy}
            aria-label={`${m.enabled ? "Disable" : "Enable"} ${m.id}`}
            onClick={() => put({ model: m.id, enabled: !m.enabled })}>{m.enabled ? "Disable" : "Enable"}</button></td>
          <td>{h ? `${h.state}, ${Math.round(h.errorRate * 100)} % errors${h.p50Ms != null ? `, p50 ${h.p50Ms} ms` : ""}`
            : "not called yet"}</td>
          {isImageModel(m) ? <>
            <td data-testid="model-price"><ImagePrices model={m} /></td>
            <td class="muted">per image, by size and steps: <code class="whole">prices.perImage</code> of{" "}
              <code class="whole">PUT /admin/models</code></td>
          </> : <>
            <td data-testid="model-price">{m.inputPerMillion.credits} / {m.outputPerMillion.credits} cr per million
              tokens (input / output)</td>
            <td><form onSubmit={(e) => { e.preventDefault(); put({ model: m.id, prices: { inputPerMillion: prices[m.id], outputPerMillion: m.outputPerMillion.credits } }); }}>
              <label for={`price-${m.id}`} class="visually-hidden">New input price of {m.id}</label>
              <input id={`price-${m.id}`} required inputMode="decimal" pattern="[0-9]+(\.[0-9]{1,6})?" size="8"
                value={prices[m.id] || ""} onInput={(e) => setPrices({ ...prices, [m.id]: e.target.value })} />{" "}
              <button type="submit" class="secondary" disabled={busy} aria-label={`Reprice ${m.id}`}>Reprice</button>
            </form></td>
          </>}</tr>;
      })}</tbody></table></TableFrame></section>;
}

function DeadLettersPage() {
  const letters = useLoad(() => api("GET", "/admin/dead-letters"));
  const [replayed, setReplayed] = useState(null);
  const [replay, busy, error] = useAction(async (id) => {
    setReplayed(await api("POST", `/admin/dead-letters/${encodeURIComponent(id)}/replay`));
    await letters.reload();
  });
  return <section class="card"><h2>Dead letters</h2><Problem error={error} />
    {replayed && <p class="success" role="status">Replayed as task {replayed.id}: {replayed.state}.</p>}
    {letters.loading ? <Loading what="dead letters" /> : letters.error ? <Problem error={letters.error} /> :
      !letters.data.deadLetters.length ? <Empty>No dead letters: every task's last attempt succeeded or is pending.</Empty> :
      <TableFrame label="Dead letters"><table><thead><tr><th scope="col">When</th><th scope="col">User</th>
        <th scope="col">Task</th><th scope="col">Error</th><th scope="col">Attempts</th><th scope="col">Replay</th></tr></thead>
        <tbody>{letters.data.deadLetters.map((l) => <tr key={l.id}><td>{when(l.at)}</td><td>{l.uid}</td>
          <td><code>{l.taskId}</code> <span class="muted">(stopped while {l.lastStep})</span></td><td>{l.error}</td><td>{l.attempts}</td>
          <td>{l.replayedAt ? `replayed ${when(l.replayedAt)}` : <button type="button" disabled={busy}
            aria-label={`Replay ${l.taskId}`} onClick={() => replay(l.id)}>Replay</button>}</td></tr>)}</tbody>
      </table></TableFrame>}
  </section>;
}

function ShortfallsPage() {
  const list = useLoad(() => api("GET", "/admin/shortfalls"));
  return <section class="card"><h2>Shortfalls</h2>
    <p>Work delivered whose cost could not be collected whole: its hold had lapsed and the balance fell short.</p>
    {list.loading ? <Loading what="shortfalls" /> : list.error ? <Problem error={list.error} /> :
      !list.data.shortfalls.length ? <Empty>No shortfalls.</Empty> : <TableFrame label="Shortfalls"><table>
        <thead><tr><th scope="col">When</th><th scope="col">Account</th><th scope="col" class="num">Owed</th>
          <th scope="col" class="num">Collected</th><th scope="col" class="num">Missing</th><th scope="col">Why</th></tr></thead>
        <tbody>{list.data.shortfalls.map((f, i) => <tr key={i}><td>{when(f.at)}</td><td>{f.account}</td>
          <td class="num">{credits(f.owed)}</td><td class="num">{credits(f.collected)}</td>
          <td class="num">{credits(f.missing)}</td><td>{f.reason}</td></tr>)}</tbody></table></TableFrame>}
  </section>;
}

function ParkedDeposit({ deposit, onDone }) {
  const [uid, setUid] = useState("");
  const [note, setNote] = useState("");
  const [credit, crediting, creditError] = useAction(async (event) => {
    event.preventDefault();
    await api("POST", `/admin/deposits/${encodeURIComponent(deposit.id)}/credit`, { uid });
    onDone(`Credited ${deposit.id} to ${uid}.`);
  });
  const [refund, refunding, refundError] = useAction(async (event) => {
    event.preventDefault();
    await api("POST", `/admin/deposits/${encodeURIComponent(deposit.id)}/refund`, { note });
    onDone(`Recorded ${deposit.id} as sent back.`);
  });
  const id = deposit.id.replace(/[^A-Za-z0-9]/g, "-");
  return <li data-testid="parked-deposit"><p><code>{deposit.txHash}</code>: {units(deposit.amount, deposit.decimals)} {deposit.token}
    {" "}from <code>{deposit.sender}</code> ({when(deposit.seenAt)})</p>
    {deposit.note && <p class="note">{deposit.note}</p>}
    <Problem error={creditError || refundError} />
    <form class="row" onSubmit={credit}><label for={`uid-${id}`}>Credit to user</label>
      <input id={`uid-${id}`} value={uid} required onInput={(e) => setUid(e.target.value)} />
      <button type="submit" disabled={crediting}>Credit</button></form>
    <form class="row" onSubmit={refund}><label for={`note-${id}`}>Sent back (how)</label>
      <input id={`note-${id}`} value={note} required onInput={(e) => setNote(e.target.value)} />
      <button type="submit" disabled={refunding}>Mark refunded</button></form></li>;
}

function Revenue({ version }) { // version: moved by what changes the figures here (a deposit credited)
  const [from, setFrom] = useState(daysAgo(29));
  const [to, setTo] = useState(daysAgo(0));
  const [asked, setAsked] = useState({ from: daysAgo(29), to: daysAgo(0) });
  const data = useLoad(() => api("GET", `/admin/revenue?${new URLSearchParams(asked)}`), [asked, version]);
  const sold = (list) => list.reduce((sum, day) => sum + day.micros, 0);
  return <>
    <form class="card" onSubmit={(e) => { e.preventDefault(); setAsked({ from, to }); }}>
      <h2>Revenue over time</h2>
      <div class="row">
        <DayRange id="r" from={from} to={to} setFrom={setFrom} setTo={setTo} />
        <button type="submit">Show</button>
      </div>
    </form>
    {data.loading ? <Loading what="revenue" /> : data.error ? <Problem error={data.error} /> : <section class="card">
      <p>Credits sold {data.data.from} to {data.data.to}: <strong data-testid="revenue-card">
        {credits(sold(data.data.series.card))}</strong> by card,{" "}
        <strong data-testid="revenue-crypto">{credits(sold(data.data.series.crypto))}
        </strong> by crypto.</p>
      {!sold(data.data.series.card) && !sold(data.data.series.crypto) ? <Empty>Nothing sold in this range.</Empty> :
        <Chart days={data.data.days} series={data.data.series} title="Credits sold per day, by card and by crypto" />}
      {data.data.card.length > 0 && <TableFrame label="Card payments in the range"><table><caption>Card payments in the range</caption>
        <thead><tr><th scope="col">Currency</th><th scope="col" class="num">Payments</th>
          <th scope="col" class="num">Gross</th><th scope="col" class="num">Refunded</th>
          <th scope="col" class="num">Disputed</th><th scope="col" class="num">Written off</th></tr></thead>
        <tbody>{data.data.card.map((t) => <tr key={t.currency}><td>{t.currency.toUpperCase()}</td>
          <td class="num">{t.payments}</td><td class="num">{price({ amount: t.gross, currency: t.currency })}</td>
          <td class="num">{price({ amount: t.refunded, currency: t.currency })}</td>
          <td class="num">{credits(t.disputed)}</td><td class="num">{credits(t.writtenOff)}</td></tr>)}</tbody>
      </table></TableFrame>}
    </section>}
  </>;
}

function PaymentsPage() {
  const cards = useLoad(() => api("GET", "/admin/payments"));
  const crypto = useLoad(() => api("GET", "/admin/deposits"));
  const [done, setDone] = useState(null);
  const [changes, setChanges] = useState(0); // deposits credited or resolved here: the revenue is read again
  const [scan, scanning, scanError] = useAction(async () => {
    const report = await api("POST", "/admin/deposits/scan");
    setDone(`Scanned blocks ${report.first} to ${report.last}: ${report.credited} credited, ${report.parked} parked.`);
    crypto.reload();
    setChanges((n) => n + 1);
  });
  const resolved = (message) => { setDone(message); crypto.reload(); setChanges((n) => n + 1); };
  const parked = crypto.data ? crypto.data.deposits.filter((d) => d.status === "parked") : [];
  return <>
    <Revenue version={changes} />
    <section class="card" aria-labelledby="cards-title"><h2 id="cards-title">Card payments (Stripe)</h2>
      {cards.loading ? <Loading what="payments" /> : cards.error ? <Problem error={cards.error} /> :
        !cards.data.totals.length ? <Empty>No card payments yet.</Empty> : <TableFrame label="Card payments"><table>
          <thead><tr><th scope="col">Currency</th><th scope="col" class="num">Payments</th>
            <th scope="col" class="num">Gross</th><th scope="col" class="num">Refunded</th>
            <th scope="col" class="num">Disputed</th><th scope="col" class="num">Written off</th></tr></thead>
          <tbody>{cards.data.totals.map((t) => <tr key={t.currency} data-testid="card-totals">
            <td>{t.currency.toUpperCase()}</td><td class="num">{t.payments}</td>
            <td class="num">{price({ amount: t.gross, currency: t.currency })}</td>
            <td class="num">{price({ amount: t.refunded, currency: t.currency })}</td>
            <td class="num">{credits(t.disputed)}</td><td class="num">{credits(t.writtenOff)}</td></tr>)}</tbody>
        </table></TableFrame>}
    </section>
    <section class="card" aria-labelledby="crypto-title"><h2 id="crypto-title">Crypto deposits</h2>
      <Problem error={scanError} />
      {done && <p class="success" role="status">{done}</p>}
      {crypto.data?.scanning === false ? <p class="muted">No chain is configured to scan (CRYPTO_* in the
        configuration).</p> : <button type="button" disabled={scanning} onClick={scan}>Scan the chain now</button>}
      {crypto.loading ? <Loading what="deposits" /> : crypto.error ? <Problem error={crypto.error} /> :
        !crypto.data.totals.length ? <Empty>No deposits yet.</Empty> : <TableFrame label="Crypto deposits"><table>
          <thead><tr><th scope="col">Token</th><th scope="col" class="num">Credited</th>
            <th scope="col" class="num">Received (base units)</th><th scope="col" class="num">Credits</th>
            <th scope="col" class="num">Parked</th></tr></thead>
          <tbody>{crypto.data.totals.map((t) => <tr key={t.token} data-testid="crypto-totals"><td>{t.token}</td>
            <td class="num">{t.deposits}</td><td class="num">{t.amount}</td><td class="num">{credits(t.credits)}</td>
            <td class="num">{t.parked}</td></tr>)}</tbody></table></TableFrame>}
      <h3>Waiting for review</h3>
      <p>Deposits from wallets nobody linked: credit one to the user who shows it was theirs, or record that it was
        sent back.</p>
      {!parked.length ? <Empty>Nothing waits for review.</Empty> :
        <ul class="parked">{parked.map((d) => <ParkedDeposit key={d.id} deposit={d} onDone={resolved} />)}</ul>}
    </section>
  </>;
}

function UserPage() {
  const [uid, setUid] = useState("");
  const [shown, setShown] = useState(null);
  const user = useLoad(() => (shown ? Promise.all([api("GET", `/admin/users/${encodeURIComponent(shown)}`),
    api("GET", `/admin/users/${encodeURIComponent(shown)}/history?limit=20`)]) : null), [shown]);
  const [amount, setAmount] = useState("");
  const [kind, setKind] = useState("promotional");
  const [reference, setReference] = useState("");
  const [granted, setGranted] = useState(null);
  const [grant, granting, grantError] = useAction(async () => {
    setGranted(await api("POST", "/admin/grants", { uid: shown, amount, kind, ...(reference ? { reference } : {}) },
      { idempotencyKey: newKey("grant") }));
    setAmount("");
    await user.reload();
  });
  return <>
    <form class="card" onSubmit={(e) => { e.preventDefault(); setGranted(null); setShown(uid.trim()); }}>
      <h2>Look up a user</h2>
      <div class="row"><div><label for="lookup-uid">User id</label><input id="lookup-uid" required value={uid}
        onInput={(e) => setUid(e.target.value)} /></div><button type="submit">Look up</button></div>
    </form>
    {shown && (user.loading ? <Loading what="the user" /> : user.error ? <Problem error={user.error} /> : user.data && <>
      <section class="card" aria-labelledby="user-title"><h2 id="user-title">{user.data[0].uid}</h2>
        <p>Account {user.data[0].account} ({user.data[0].status}): available{" "}
          <strong data-testid="user-available">{credits(user.data[0].balance.available)}</strong>, held{" "}
          {credits(user.data[0].balance.held)}.</p>
        <form onSubmit={(e) => { e.preventDefault(); grant(); }}>
          <h3>Grant credits</h3>
          <div class="row">
            <div><label for="g-amount">Amount (credits)</label><input id="g-amount" required inputMode="decimal"
              pattern="[0-9]+(\.[0-9]{1,6})?" value={amount} onInput={(e) => setAmount(e.target.value)} /></div>
            <div><label for="g-kind">Kind</label><select id="g-kind" value={kind} onChange={(e) => setKind(e.target.value)}>
              <option value="promotional">promotional</option><option value="paid">paid</option></select></div>
            <div><label for="g-ref">Reference (optional)</label><input id="g-ref" value={reference}
              onInput={(e) => setReference(e.target.value)} /></div>
            <button type="submit" disabled={granting}>Grant</button>
          </div>
          <Problem error={grantError} />
          {granted && <p class="success" role="status">Granted {credits(granted.granted)}.</p>}
        </form>
      </section>
      <section class="card"><h2>Their latest entries</h2>
        {!user.data[1].entries.length ? <Empty>No entries.</Empty> : <TableFrame label="Their latest entries"><table>
          <thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Kind</th>
            <th scope="col" class="num">Amount</th><th scope="col">With</th></tr></thead>
          <tbody>{user.data[1].entries.map((e) => <tr key={e.id}><td>{e.seq}</td><td>{when(e.at)}</td><td>{e.kind}</td>
            <td class="num">{credits(e.amount)}</td><td>{e.counterparty}</td></tr>)}</tbody></table></TableFrame>}
      </section></>)}
  </>;
}

function Admin() {
  const route = useRoute();
  return <Shell title="Creditflow admin console" links={LINKS} route={route} other={<a href="/">User app</a>}>
    {(session) => {
      if (!session.admin) {
        return <div class="error" role="alert">This console needs an admin account: {session.uid} is not one.
          Sign out and paste an admin token (<code>./creditflow dev-token UID --admin</code> locally).</div>;
      }
      switch (route) {
        case "ledger": return <LedgerPage />;
        case "models": return <ModelsPage />;
        case "dead-letters": return <DeadLettersPage />;
        case "shortfalls": return <ShortfallsPage />;
        case "payments": return <PaymentsPage />;
        case "users": return <UserPage />;
        default: return <UsagePage />;
      }
    }}</Shell>;
}

mount(Admin);
