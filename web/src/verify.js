// Checks one ledger entry IN THE BROWSER, as the Python verifier (domain/audit.py, entries.py, merkle.py,
// checkpoint.py, services/integrity.py verify_entry) does: the body hashes to the entry hash; the body is RFC 8785
// canonical JSON and agrees with where the entry is stored; the Ed25519 signature over the hash verifies with a
// published key; the body links to the hash of the account's previous entry; the checkpoint (a C2SP signed note)
// verifies; the entry is leaf `leaf_index` of that tree (RFC 6962 inclusion proof); and that tree is consistent
// with the latest signed checkpoint, and the latest with the one this browser kept from its last verification (a
// witness: a log rolled back or rewritten by whoever holds the signing key passes every check the server can make,
// but not this one). The server's own verdicts are never used: only its data. The keys are those the server
// publishes, or those pinned when the app was built (keys.js).
import * as ed from "@noble/ed25519";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { api } from "./api.js";
import { canonical } from "./canonical.js";
import { fromBase64, toHex, trustedKeys, utf8 } from "./keys.js";
import { equal, leafHash, verifyConsistency, verifyInclusion } from "./merkle.js";

export { parseVkey, trustedKeys } from "./keys.js";

ed.hashes.sha512 = sha512;
const GENESIS = "0".repeat(64);
const KEPT = "creditflow.checkpoint"; // the largest signed checkpoint this browser has verified
function fromHex(text) {
  if (!/^([0-9a-f]{2})*$/i.test(text)) throw new Error("not hexadecimal");
  return Uint8Array.from(text.match(/../g) || [], (pair) => parseInt(pair, 16));
}

/** A C2SP signed note holding a tlog checkpoint: answers { origin, size, root, keyId } or raises why not. */
export function openCheckpoint(note, keys, said = "a published key") {
  const cut = note.lastIndexOf("\n\n");
  if (cut < 0 || !note.endsWith("\n")) throw new Error("a signed note is a text, a blank line, then signature lines");
  const body = note.slice(0, cut + 1);
  let verifiedBy = null;
  for (const line of note.slice(cut + 2, -1).split("\n")) {
    if (!line.startsWith("\u2014 ")) throw new Error(`malformed signature line ${JSON.stringify(line)}`);
    const [name, blob] = line.slice(2).split(" ");
    const raw = fromBase64(blob || "");
    const known = keys.get(toHex(raw.slice(0, 4)));
    if (known && known.name === name && ed.verify(raw.slice(4), utf8(body), known.key)) verifiedBy = known.keyId;
  }
  if (!verifiedBy) throw new Error(`no signature on the checkpoint verifies with ${said}`);
  const lines = body.split("\n");
  if (lines.length < 4 || !/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error("the checkpoint body is malformed");
  const root = fromBase64(lines[2]);
  if (root.length !== 32) throw new Error("the checkpoint's root hash is not 32 bytes");
  return { origin: lines[0], size: Number(lines[1]), root, keyId: verifiedBy };
}

/** A /ledger/consistency answer checked here: its proof against the heads the two checkpoints it names sign (the
 * empty tree's for size 0), never against the roots sent beside them. True or false, or raises why it cannot tell. */
export function checkConsistency(answer, keys, said = "a published key") {
  const head = (size, note) => {
    if (size === 0) return sha256(new Uint8Array());
    const signed = openCheckpoint(note || "", keys, said);
    if (signed.size !== size) throw new Error(`the checkpoint sent for size ${size} is of size ${signed.size}`);
    return signed.root;
  };
  return verifyConsistency(answer.from, answer.to, head(answer.from, answer.fromCheckpoint),
    head(answer.to, answer.toCheckpoint), answer.proof.map(fromBase64));
}

async function check(checks, name, what, run) {
  try {
    const result = await run();
    const ok = result === true || (result && result.ok === true);
    checks.push({ name, what, ok, detail: ok ? (result.detail || "") : (result && result.detail) || "it does not" });
    return ok;
  } catch (error) {
    checks.push({ name, what, ok: false, detail: error.message });
    return false;
  }
}

/** Every check on one entry: { ok, entryId, checks: [{ name, what, ok, detail }] }. */
export async function verifyEntry(entryId) {
  const [report, published, latestNote] = await Promise.all([
    api("GET", `/credits/verify/${encodeURIComponent(entryId)}`),
    api("GET", "/ledger/public-keys"),
    api("GET", "/ledger/checkpoint"),
  ]);
  const { keys, pinned, said } = trustedKeys(published);
  const which = pinned ? "pinned" : "published";
  const entry = report.entry;
  const checks = [];
  let fields = null;
  const hashOk = await check(checks, "hash", "the entry's body hashes (SHA-256) to its hash", () => {
    const got = toHex(sha256(utf8(entry.body)));
    return got === entry.hash ? { ok: true, detail: entry.hash } :
      { ok: false, detail: `the body hashes to ${got}, not to the stored hash ${entry.hash}: it was altered` };
  });
  await check(checks, "canonical", "the body is RFC 8785 canonical JSON and matches where the entry is stored",
    () => {
      fields = JSON.parse(entry.body);
      if (entry.id !== entryId) return { ok: false, detail: `asked for entry ${entryId}, the server sent ${entry.id}` };
      if (canonical(fields) !== entry.body) return { ok: false, detail: "the body is not RFC 8785 canonical JSON" };
      const wrong = ["id", "account", "seq", "kind", "at"].filter((name) => fields[name] !== entry[name]);
      return wrong.length ? { ok: false, detail: `the body disagrees on ${wrong.join(", ")}` } : true;
    });
  await check(checks, "signature", "the platform's Ed25519 signature over the hash verifies", () => {
    const key = keys.get(entry.keyId);
    if (!key) return { ok: false, detail: `key ${entry.keyId} is not among the ${which} keys` };
    const ok = ed.verify(fromBase64(entry.signature), fromHex(entry.hash), key.key);
    return ok ? { ok: true, detail: `with ${which} key ${key.name}+${key.keyId}` } :
      { ok: false, detail: `the signature does not verify with the ${which} key ${key.name}+${key.keyId}: the ` +
        "signature or the entry was altered" };
  });
  await check(checks, "chain", "the entry links to the account's previous entry", async () => {
    if (!fields) return { ok: false, detail: "the body could not be read" };
    let expected = GENESIS;
    let before = "the start of the chain";
    if (entry.seq > 1) {
      const page = await api("GET", `/credits/history?cursor=${entry.seq}&limit=1`);
      const previous = page.entries[0];
      if (!previous || previous.seq !== entry.seq - 1) {
        return { ok: false, detail: `entry #${entry.seq - 1} of the account is missing` };
      }
      expected = previous.hash;
      before = `entry #${previous.seq} (${previous.id})`;
    }
    return fields.prev === expected ? { ok: true, detail: `prev = ${expected.slice(0, 16)}…, ${before}` } :
      { ok: false, detail: `the body's prev ${String(fields.prev).slice(0, 16)}… is not the hash of ${before}` };
  });
  let checkpoint = null;
  await check(checks, "checkpoint", `the checkpoint proving it is signed by ${said}`, () => {
    checkpoint = openCheckpoint(report.checkpoint, keys, said);
    return { ok: true, detail: `tree of ${checkpoint.size} entries, ${checkpoint.origin}` };
  });
  await check(checks, "inclusion", "the entry is in the tree (RFC 6962 inclusion proof)", () => {
    if (!checkpoint) return { ok: false, detail: "no verified checkpoint to check it against" };
    if (!hashOk && !/^[0-9a-f]{64}$/.test(entry.hash)) return { ok: false, detail: "the entry hash is malformed" };
    const proof = report.inclusionProof.map(fromBase64);
    const ok = verifyInclusion(leafHash(fromHex(entry.hash)), report.leafIndex, checkpoint.size, proof,
      checkpoint.root);
    return ok ? { ok: true, detail: `leaf ${report.leafIndex} of ${checkpoint.size}, ${proof.length} hashes` } :
      { ok: false, detail: `the proof does not make it leaf ${report.leafIndex} of the tree of ${checkpoint.size}` };
  });
  let latest = null;
  let latestText = latestNote;
  await check(checks, "latest", "that tree is consistent with the latest signed checkpoint", async () => {
    if (!checkpoint) return { ok: false, detail: "no verified checkpoint to start from" };
    latest = openCheckpoint(latestNote, keys, said);
    if (latest.size < checkpoint.size) {
      latestText = await api("GET", "/ledger/checkpoint"); // signed meanwhile
      const again = openCheckpoint(latestText, keys, said);
      if (again.size < checkpoint.size) return { ok: false, detail: "the latest checkpoint is older than the proof's" };
      Object.assign(latest, again);
    }
    if (latest.size === checkpoint.size) {
      return equal(latest.root, checkpoint.root) ? { ok: true, detail: `it is the latest (size ${latest.size})` } :
        { ok: false, detail: "two checkpoints of one size disagree: the log was rewritten" };
    }
    const proof = await api("GET", `/ledger/consistency?from=${checkpoint.size}&to=${latest.size}`);
    const ok = verifyConsistency(checkpoint.size, latest.size, checkpoint.root, latest.root,
      proof.proof.map(fromBase64));
    return ok ? { ok: true, detail: `size ${checkpoint.size} → ${latest.size}, ${proof.proof.length} hashes` } :
      { ok: false, detail: `the consistency proof from ${checkpoint.size} to ${latest.size} does not verify` };
  });
  await check(checks, "kept", "the log still holds the tree this browser verified before (no rollback, no rewrite)",
    () => keptStillHeld(latest, latestText, keys, said));
  return { ok: checks.every((c) => c.ok), entryId, checks };
}

/** The latest checkpoint against the one kept from this browser's last verification, which it then replaces. */
async function keptStillHeld(latest, latestText, keys, said) {
  if (!latest) return { ok: false, detail: "no verified latest checkpoint" };
  const keep = () => {
    try {
      localStorage.setItem(KEPT, latestText);
    } catch {
      // storage full or refused: the next verification starts afresh
    }
  };
  const text = localStorage.getItem(KEPT);
  let kept = null;
  try {
    kept = text ? openCheckpoint(text, keys, said) : null;
  } catch (error) {
    return { ok: false, detail: `the checkpoint this browser kept no longer verifies (${error.message}): the ` +
      "ledger's keys were replaced" };
  }
  if (!kept || kept.origin !== latest.origin) {
    keep();
    return { ok: true, detail: `none kept yet: the tree of ${latest.size} entries is kept for next time` };
  }
  if (latest.size < kept.size) {
    return { ok: false, detail: `this browser verified a tree of ${kept.size} entries; the log now has ` +
      `${latest.size}: it was rolled back` };
  }
  if (latest.size === kept.size) {
    return equal(latest.root, kept.root) ? { ok: true, detail: `the same tree of ${kept.size} entries` } :
      { ok: false, detail: `two signed trees of ${kept.size} entries disagree: the log was rewritten` };
  }
  const proof = await api("GET", `/ledger/consistency?from=${kept.size}&to=${latest.size}`);
  if (!verifyConsistency(kept.size, latest.size, kept.root, latest.root, proof.proof.map(fromBase64))) {
    return { ok: false, detail: `the tree of ${kept.size} entries this browser verified is not where the log of ` +
      `${latest.size} starts: it was rewritten` };
  }
  keep();
  return { ok: true, detail: `size ${kept.size} → ${latest.size}, ${proof.proof.length} hashes` };
}
