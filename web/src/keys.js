// The ledger's verifier keys (C2SP note keys, as `./creditflow keys show` prints them) and which ones the browser
// believes. By default, those the server publishes at /ledger/public-keys: the page then checks the server's data
// against keys the same server names. A deployer may pin them when the app is built (WEB_LEDGER_KEYS, read by
// build.mjs): then only those verify entries and checkpoints, and a key the server publishes beside them is not
// believed. (The page itself still comes from the deployment; a check that trusts nothing of it is the CLI's
// `ledger verify-export --public-key`.)
import { sha256 } from "@noble/hashes/sha2.js";

/* global __WEB_LEDGER_KEYS__ */
export const PINNED = typeof __WEB_LEDGER_KEYS__ === "undefined" ? [] : __WEB_LEDGER_KEYS__; // set by build.mjs

export const utf8 = (text) => new TextEncoder().encode(text);
export const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
export function fromBase64(text) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4) throw new Error("not base64");
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** A C2SP note verifier key: name+hex(key id)+base64(0x01 ‖ Ed25519 key), its key id checked. */
export function parseVkey(vkey) {
  const [name, id, blob] = [vkey.split("+")[0], vkey.split("+")[1], vkey.split("+").slice(2).join("+")];
  const raw = fromBase64(blob || "");
  if (!name || !id || raw.length !== 33 || raw[0] !== 1) throw new Error(`not an Ed25519 verifier key: ${vkey}`);
  const key = raw.slice(1);
  const keyId = toHex(sha256(new Uint8Array([...utf8(`${name}\n`), 1, ...key])).slice(0, 4));
  if (keyId !== id.toLowerCase()) throw new Error(`verifier key id ${id} does not match its key`);
  return { name, keyId, key };
}

/** The keys to verify with, by key id, and whether they were pinned: the pinned ones when there are any, else those
 * the /ledger/public-keys answer `published` lists. */
export function trustedKeys(published, pinned = PINNED) {
  const listed = pinned.length ? pinned : [published.active, ...(published.keys || [])];
  const keys = new Map();
  for (const vkey of new Set(listed)) {
    const key = parseVkey(vkey);
    keys.set(key.keyId, key);
  }
  return { keys, pinned: pinned.length > 0, said: pinned.length ? "a key pinned in this app" : "a published key" };
}
