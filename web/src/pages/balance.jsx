// The balance, live from /balances/{uid} (the lots re-read when its version moves), the welcome bonus, and the
// notifications from /notifications/{uid} (the low-balance notice among them).
import { useEffect, useState } from "preact/hooks";
import { api, newKey } from "../api.js";
import { watch } from "../realtime.js";
import { Empty, Loading, Problem, TableFrame, credits, useAction, when } from "../ui.jsx";

export const STATUS_TEXT = { connecting: "Connecting…", live: "Live", lost: "Connection lost: reconnecting…",
  reconnected: "Reconnected: live again", refused: "Not live" };

export function LiveStatus({ status, detail }) {
  return <p class="status" role="status" aria-live="polite" data-status={status}>
    Updates: <strong>{STATUS_TEXT[status] || status}</strong>{detail ? ` — ${detail}` : ""}</p>;
}

const LATEST_NOTICES = { orderBy: "at", limitToLast: 20 }; // the newest (the tree keeps MIRROR_KEPT, 200 by default)

/**
 * [value, status] of a realtime path, or of a query of it ({orderBy, limitToLast…}). Another path starts from
 * nothing (not the last path's value); no path watches nothing and keeps the last value (a finished task's stream).
 */
export function useLive(path, query = null) {
  const [value, setValue] = useState(null);
  const [status, setStatus] = useState({ status: "connecting" });
  const asked = query && JSON.stringify(query);
  useEffect(() => {
    if (!path) return undefined;
    setValue(null);
    setStatus({ status: "connecting" });
    return watch(path, setValue, (s, detail) => setStatus({ status: s, detail }), query);
  }, [path, asked]);
  return [value, status];
}

function NoticeText({ notice }) {
  if (notice.kind === "task.finished") {
    return <>Task <a href={`#/tasks/${encodeURIComponent(notice.taskId)}`}>{notice.taskId}</a> {notice.state}, charged{" "}
      {credits(notice.charged)} ({when(notice.at)})</>;
  }
  if (notice.kind === "images.ready") {
    return <>Images of task <a href={`#/tasks/${encodeURIComponent(notice.taskId)}`}>{notice.taskId}</a> are ready,
      charged {credits(notice.charged)} ({when(notice.at)})</>;
  }
  if (notice.kind === "payment.received") {
    return <><strong>Payment received</strong>: {credits(notice.credits)} credited ({when(notice.at)})</>;
  }
  if (notice.type === "low_balance") return <><strong>Low balance</strong>: {notice.message}</>;
  return <><strong>{notice.kind || notice.type || "Notice"}</strong>: {notice.message || ""}</>;
}

export function BalancePage({ session }) {
  const [mirror, live] = useLive(`balances/${session.uid}`);
  const [notes] = useLive(`notifications/${session.uid}`, LATEST_NOTICES);
  const [balance, setBalance] = useState(null);
  const [error, setError] = useState(null);
  const version = mirror ? mirror.version : null;
  useEffect(() => {
    api("GET", "/credits/balance").then(setBalance, setError);
  }, [version]);
  const [offer, setOffer] = useState(null); // the welcome bonus: how much, and whether a claim can succeed
  const loadOffer = () => api("GET", "/credits/welcome-bonus").then(setOffer, () => setOffer(null)); // none: no button
  useEffect(() => { loadOffer(); }, []);
  const [claim, claiming, claimError] = useAction(async () => {
    const result = await api("POST", "/credits/welcome-bonus", {}, { idempotencyKey: newKey("welcome") });
    setBalance(await api("GET", "/credits/balance"));
    return result;
  });
  const [claimed, setClaimed] = useState(null);
  const onClaim = async () => {
    const result = await claim();
    setClaimed(result);
    loadOffer(); // claimed now, or why it was refused
  };
  const shown = mirror && (!balance || mirror.version >= balance.version) ? mirror : balance;
  const notices = Object.entries(notes || {}).map(([id, n]) => ({ id, ...n }))
    .sort((a, b) => String(b.at || b.createdAt || "").localeCompare(String(a.at || a.createdAt || ""))).slice(0, 10);
  const micros = (m) => (typeof m === "number" ? m : m ? m.micros : null);
  const lastLow = notices.find((n) => n.type === "low_balance");
  const low = lastLow && shown && micros(shown.available) < micros(lastLow.threshold) ? lastLow : null; // still below it
  return <>
    <section class="card" aria-labelledby="balance-title">
      <h2 id="balance-title">Your balance</h2>
      <LiveStatus {...live} />
      <Problem error={error} />
      {!shown ? <Loading what="your balance" /> : <div class="row">
        <div><div class="muted">Available</div><div class="big" data-testid="available">{credits(shown.available)}</div></div>
        <div><div class="muted">Held for work in progress</div><div class="big" data-testid="held">{credits(shown.held)}</div></div>
      </div>}
      {low && <div class="notice" role="alert" data-testid="low-balance"><strong>Low balance:</strong>{" "}
        {low.message || "your balance is below the low-balance threshold"}</div>}
      {offer && offer.claimable && <div class="row">
        <button type="button" disabled={claiming} onClick={onClaim}>
          {claiming ? "Claiming…" : `Claim the welcome bonus: ${credits(offer.amount)}`}</button>
      </div>}
      {offer && !offer.claimable && ["email-not-verified", "network-limit"].includes(offer.reason) &&
        <p class="muted" data-testid="welcome-why-not">{offer.detail}.</p>}
      {claimed && <div class="success" role="status">Welcome bonus: {credits(claimed.granted)} granted.</div>}
      <Problem error={claimError} />
    </section>
    <section class="card" aria-labelledby="lots-title">
      <h2 id="lots-title">Lots</h2>
      {!balance ? <Loading what="lots" /> : !balance.lots.length ?
        <Empty>No credits yet{offer && offer.claimable ? ": claim the welcome bonus" : ""}.</Empty> :
        <TableFrame label="Lots"><table>
          <thead><tr><th scope="col">Kind</th><th scope="col" class="num">Available</th>
            <th scope="col" class="num">Held</th><th scope="col">Expires</th></tr></thead>
          <tbody>{balance.lots.map((lot) => <tr key={lot.id}><td>{lot.kind}</td>
            <td class="num">{credits(lot.available)}</td><td class="num">{credits(lot.held)}</td>
            <td>{lot.expiresAt ? when(lot.expiresAt) : "never"}</td></tr>)}</tbody>
        </table></TableFrame>}
    </section>
    <section class="card" aria-labelledby="notes-title">
      <h2 id="notes-title">Notifications</h2>
      {!notices.length ? <Empty>No notifications.</Empty> : <ul>{notices.map((n) =>
        <li key={n.id}><NoticeText notice={n} /></li>)}</ul>}
    </section>
  </>;
}
