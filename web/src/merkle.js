// RFC 6962 / RFC 9162 §2.1: leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right); the inclusion and
// consistency verifiers of RFC 9162 §2.1.3.2 and §2.1.4.2, as domain/merkle.py has them (false on anything malformed).
import { sha256 } from "@noble/hashes/sha2.js";

const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};
export const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
export const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
export const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));
const isHash = (h) => h instanceof Uint8Array && h.length === 32;
const isSize = (n) => Number.isSafeInteger(n) && n >= 0;
// Halving, not Math.log2: log2(2**50 + 1) rounds to 50, and bitwise operators stop at 32 bits.
function isPowerOfTwo(n) {
  while (n > 1 && n % 2 === 0) n /= 2;
  return n === 1;
}

export function verifyInclusion(leaf, index, size, proof, root) {
  if (!isHash(leaf) || !isHash(root) || !isSize(index) || !isSize(size) || index >= size) return false;
  if (!proof.every(isHash)) return false;
  // index and size stay below 2^53: halve them with arithmetic, not 32-bit operators
  let fn = index, sn = size - 1, result = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      result = nodeHash(p, result);
      while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      result = nodeHash(result, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(result, root);
}

export function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) {
  if (!isSize(oldSize) || !isSize(newSize) || !isHash(oldRoot) || !isHash(newRoot)) return false;
  if (!proof.every(isHash) || oldSize > newSize) return false;
  if (oldSize === newSize) return proof.length === 0 && equal(oldRoot, newRoot);
  if (oldSize === 0) return proof.length === 0 && equal(oldRoot, sha256(new Uint8Array()));
  if (!proof.length) return false;
  let path = proof;
  if (isPowerOfTwo(oldSize)) path = [oldRoot, ...proof];
  let fn = oldSize - 1, sn = newSize - 1;
  while (fn % 2 === 1) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
  let fr = path[0], sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return equal(fr, oldRoot) && equal(sr, newRoot) && sn === 0;
}
