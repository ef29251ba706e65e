// The caller's own audit (GET /credits/audit as a user): the server checks their hash chain and signatures, their
// balance, lots and holds against the entries, and proves each of their entries in the log included in the latest
// signed checkpoint; the page says what it found, every finding named.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { Problem, credits, useAction, when } from "../ui.jsx";

/** Which checkpoint the entries were proved against, and what came after it. */
function Checkpoint({ report }) {
  if (report.checkpointSize == null) {
    return <>No checkpoint is signed yet, so none of your entries could be proved included in the log.</>;
  }
  const later = report.entries - (report.proved ?? 0);
  return <>Against the latest signed checkpoint, a tree of{" "}
    <strong data-testid="own-audit-checkpoint">{report.checkpointSize}</strong>{" "}
    {report.checkpointSize === 1 ? "entry" : "entries"}:{" "}
    <strong data-testid="own-audit-proved">{report.proved ?? 0}</strong> of yours proved in it by an inclusion proof
    {later > 0 ? `; ${later} written after it ${later === 1 ? "is" : "are"} proved against the next checkpoint` : ""}
    {report.treeSize > report.checkpointSize ? ` (the log has ${report.treeSize} entries now)` : ""}.</>;
}

function Report({ report }) {
  const errors = report.findings.filter((f) => f.severity === "error").length;
  return <div class={report.ok ? "success" : "error"} role="status" data-testid="own-audit" data-ok={String(report.ok)}>
    <p><strong>{report.ok ? "Your audit passed" : "Your audit FAILED"}</strong>
      {report.ok ? "" : `: ${errors === 1 ? "1 error" : `${errors} errors`}`}.</p>
    <p><strong data-testid="own-audit-entries">{report.entries}</strong> of your entries checked: their hash chain
      and signatures, and your balance{report.totals?.users ? ` (${credits(report.totals.users)}${
        report.totals.held?.micros ? `, ${credits(report.totals.held)} of it held` : ""})` : ""}, lots and holds
      against them.</p>
    <p><Checkpoint report={report} /></p>
    {report.findings.length > 0 && <>
      <h3>{report.findings.length === 1 ? "1 finding" : `${report.findings.length} findings`}</h3>
      <ul data-testid="own-audit-findings">{report.findings.map((f, i) => <li key={i} data-check={f.check}
        data-severity={f.severity}><span class={`tag ${f.severity === "error" ? "bad" : ""}`}>{f.severity}</span>{" "}
        {f.check}: {f.detail}{f.detail.includes(f.subject) ? "" : <span class="muted"> ({f.subject})</span>}</li>)}
      </ul></>}
    {report.idempotencyConflicts.length > 0 && <>
      <h3>Requests sent again with another body</h3>
      <ul>{report.idempotencyConflicts.map((c, i) => <li key={i}>{c.command} with Idempotency-Key{" "}
        <code>{c.key}</code> sent again with another {c.field}, and refused ({when(c.at)})</li>)}</ul></>}
  </div>;
}

export function AuditPage() {
  const [report, setReport] = useState(null);
  const [run, auditing, error] = useAction(async () => setReport(await api("GET", "/credits/audit")));
  return <section class="card" aria-labelledby="own-audit-title">
    <h2 id="own-audit-title">Audit your account</h2>
    <p>The server checks every one of your ledger entries: its hash chain and signature, your balance, lots and holds
      against them, and an inclusion proof of each entry in the latest signed checkpoint of the public log.</p>
    <button type="button" onClick={run} disabled={auditing}>{auditing ? "Auditing…" : "Audit my account"}</button>
    <Problem error={error} />
    {report && <Report report={report} />}
  </section>;
}
