// Bundles the user app (index.html + app.js) and the admin console (admin.html + admin.js) into dist/, with
// everything they use from npm inside: nothing is fetched from a CDN at run time. `node build.mjs --watch` rebuilds;
// `--out DIR` writes elsewhere. WEB_LEDGER_KEYS (verifier keys, separated by commas or spaces) pins the keys the
// browser's ledger verifier believes (src/keys.js); each is checked here, so a mistyped one fails the build.
import { build, context } from "esbuild";
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { parseVkey } from "./src/keys.js";

const at = process.argv.indexOf("--out");
const out = at > 0 && process.argv[at + 1] ? process.argv[at + 1] : "dist";
const pinned = (process.env.WEB_LEDGER_KEYS || "").split(/[\s,]+/).filter(Boolean);
try {
  pinned.forEach(parseVkey); // one that is not a verifier key, or whose key id does not match its key, is refused
} catch (error) {
  console.error(`WEB_LEDGER_KEYS: ${error.message}`);
  process.exit(1);
}
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const page of ["index.html", "admin.html", "styles.css"]) cpSync(page, `${out}/${page}`);
cpSync("node_modules/uplot/dist/uPlot.min.css", `${out}/uplot.css`);

const options = {
  entryPoints: { app: "src/app.jsx", admin: "src/admin.jsx" },
  outdir: out,
  bundle: true,
  splitting: true, // what both pages share, and the Firebase SDK loaded only where it is configured, are chunks
  format: "esm",
  minify: true,
  sourcemap: "linked",
  target: ["chrome110", "firefox115", "safari16"],
  jsx: "automatic",
  jsxImportSource: "preact",
  chunkNames: "chunks/[name]-[hash]",
  metafile: true,
  logLevel: "warning",
  define: { __WEB_LEDGER_KEYS__: JSON.stringify(pinned) },
};

if (process.argv.includes("--watch")) {
  const ctx = await context(options);
  await ctx.watch();
  console.log("watching src/ ...");
} else {
  const result = await build(options);
  writeFileSync(`${out}/meta.json`, JSON.stringify(result.metafile));
  console.log(`built ${out}/ (app.js, admin.js and their chunks)` +
    (pinned.length ? `; the ledger verifier believes only ${pinned.length} pinned key(s)` : ""));
}
