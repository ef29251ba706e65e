// Answers, one JSON line per request line, what the browser's verifier (web/src/canonical.js, merkle.js, keys.js)
// says: the Python tests hand it entry bodies, Merkle proofs and keys and compare its verdicts with the Python
// verifier's.
import { createInterface } from "node:readline";
import { canonical } from "../../web/src/canonical.js";
import { trustedKeys } from "../../web/src/keys.js";
import { leafHash, verifyConsistency, verifyInclusion } from "../../web/src/merkle.js";

const bytes = (hex) => Uint8Array.from(Buffer.from(hex, "hex"));
const hex = (data) => Buffer.from(data).toString("hex");
const ops = {
  canonical: ({ body }) => canonical(JSON.parse(body)),
  leaf: ({ data }) => hex(leafHash(bytes(data))),
  inclusion: ({ leaf, index, size, proof, root }) => verifyInclusion(bytes(leaf), index, size, proof.map(bytes),
    bytes(root)),
  consistency: ({ old, size, oldRoot, root, proof }) => verifyConsistency(old, size, bytes(oldRoot), bytes(root),
    proof.map(bytes)),
  trusted: ({ published, pinned }) => {
    const { keys, pinned: wasPinned, said } = trustedKeys(published, pinned);
    return { keys: [...keys.values()].map((k) => `${k.name}+${k.keyId}+${hex(k.key)}`), pinned: wasPinned, said };
  },
};
for await (const line of createInterface({ input: process.stdin })) {
  let answer;
  try {
    const request = JSON.parse(line);
    answer = { ok: ops[request.op](request) };
  } catch (error) {
    answer = { error: String(error && error.message) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
