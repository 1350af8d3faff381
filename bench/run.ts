/**
 * `npm run bench`: runs every bench/*.bench.ts (or the names given) one after the other and
 * prints each one's figures as a table with reference and ratio; exits 1 when a bench fails or
 * a figure misses its reference.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { formatFigures, meets, type Figure } from "./report.js";

const dir = path.dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const files = fs.readdirSync(dir).filter((f) => f.endsWith(".bench.ts")).filter((f) => !wanted.length || wanted.some((w) => f.includes(w))).sort();
let failed = 0;
const missed: string[] = [];
for (const file of files) {
  const mod = (await import(pathToFileURL(path.join(dir, file)).href)) as { title: string; run: () => Promise<Figure[]> };
  const started = Date.now();
  try {
    const figures = await mod.run();
    console.log(formatFigures(`${mod.title} (${file}, ${((Date.now() - started) / 1000).toFixed(1)} s)`, figures) + "\n");
    missed.push(...figures.filter((f) => !meets(f)).map((f) => `${file}: ${f.name}`));
  } catch (e) {
    failed++;
    console.error(`## ${file} failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  }
}
// A figure that misses its target is a failure too, not just a NO in a table.
if (missed.length) console.error(`${missed.length} figure(s) miss their reference:\n${missed.map((m) => `  - ${m}`).join("\n")}`);
process.exit(failed || missed.length ? 1 : 0);
