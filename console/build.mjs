// Builds the console into dist/: console.js (the app), layout.js (the ForceAtlas2
// web worker), console.css, index.html and licenses.txt (the licences of the
// bundled npm packages). The same sources and package-lock.json give the same bytes.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const out = "dist";
rmSync(out, { recursive: true, force: true });
mkdirSync(out);
const common = {
  bundle: true, minify: true, format: "esm", target: "es2022", legalComments: "none",
  logLevel: "warning", metafile: true, charset: "utf8",
};
const app = await build({ ...common, entryPoints: { console: "src/main.js" }, outdir: out,
  loader: { ".css": "css" } });
const worker = await build({ ...common, entryPoints: { layout: "src/layoutworker.js" },
  outdir: out });
copyFileSync("index.html", join(out, "index.html"));

// The npm packages whose code is in the bundles, with their licence texts.
const used = new Set();
for (const meta of [app.metafile, worker.metafile]) {
  for (const input of Object.keys(meta.inputs)) {
    const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
    if (m) used.add(m[1]);
  }
}
let text = "Licences of the npm packages bundled into the crawlgraph console\n\n";
for (const name of [...used].sort()) {
  const dir = join("node_modules", name);
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  text += `== ${name} ${pkg.version} (${pkg.license})\n\n`;
  text += file ? readFileSync(join(dir, file), "utf8").trim() + "\n\n" : "(no licence file)\n\n";
}
writeFileSync(join(out, "licenses.txt"), text);
console.log(`console built into ${out}/: ${[...used].sort().join(", ")}`);
