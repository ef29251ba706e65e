// Bundles the user app (index.html + app.js) and the admin console (admin.html + admin.js) into dist/, with
// everything they use from npm inside: nothing is fetched from a CDN at run time. `node build.mjs --watch` rebuilds.
import { build, context } from "esbuild";
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";

const out = "dist";
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
};

if (process.argv.includes("--watch")) {
  const ctx = await context(options);
  await ctx.watch();
  console.log("watching src/ ...");
} else {
  const result = await build(options);
  writeFileSync(`${out}/meta.json`, JSON.stringify(result.metafile));
  console.log(`built ${out}/ (app.js, admin.js and their chunks)`);
}
