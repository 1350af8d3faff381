/**
 * `npm run bench`: runs every bench/*.bench.ts (or the names given) one after the other and
 * prints each one's figures as a table with reference and ratio.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { formatFigures, type Figure } from "./report.js";

const dir = path.dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const files = fs.readdirSync(dir).filter((f) => f.endsWith(".bench.ts")).filter((f) => !wanted.length || wanted.some((w) => f.includes(w))).sort();
let failed = 0;
for (const file of files) {
  const mod = (await import(pathToFileURL(path.join(dir, file)).href)) as { title: string; run: () => Promise<Figure[]> };
  const started = Date.now();
  try {
    const figures = await mod.run();
    console.log(formatFigures(`${mod.title} (${file}, ${((Date.now() - started) / 1000).toFixed(1)} s)`, figures) + "\n");
  } catch (e) {
    failed++;
    console.error(`## ${file} failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  }
}
process.exit(failed ? 1 : 0);
