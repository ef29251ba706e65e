// RFC 8785 (JSON Canonicalization Scheme) for the values ledger entries hold: members sorted by their names' UTF-16
// code units, no whitespace, strings and numbers as ECMAScript's JSON.stringify writes them (which RFC 8785 adopts).
export function canonical(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error("RFC 8785 has no form for NaN or Infinity");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object") {
    const names = Object.keys(value).sort(); // default sort compares UTF-16 code units, as RFC 8785 §3.2.3 asks
    return `{${names.map((name) => `${JSON.stringify(name)}:${canonical(value[name])}`).join(",")}}`;
  }
  throw new Error(`RFC 8785 has no form for a ${typeof value}`);
}
