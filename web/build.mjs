// Copies the browser builds of our npm dependencies into the Python package's static folder.
// No bundler: the pages load these files directly, so an isolated network needs no CDN.
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "cityops", "web", "static", "vendor");
mkdirSync(out, { recursive: true });

const files = [
  ["echarts/dist/echarts.min.js", "echarts.min.js"],
  ["htmx.org/dist/htmx.min.js", "htmx.min.js"],
];
const versions = {};
for (const [from, to] of files) {
  copyFileSync(join(here, "node_modules", from), join(out, to));
  const pkg = from.split("/")[0];
  versions[pkg] = JSON.parse(readFileSync(join(here, "node_modules", pkg, "package.json"))).version;
}
console.log(`front-end assets → ${out}`, versions);
