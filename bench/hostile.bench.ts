/**
 * Hostile MIME (the cases of test/formats/voiceMessage.test.ts, bigger): time and memory to
 * parse or refuse each, in a process of its own per case so one case's garbage does not count
 * against the next. Bounded means: well under a worker's memory and far under a run's deadline.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Figure } from "./report.js";

export const title = "Hostile MIME: parse or refuse, bounded";

const CASES = ["deep-nesting", "huge-header", "many-headers", "part-flood", "encoded-word-flood", "max-size-audio"] as const;

export async function run(): Promise<Figure[]> {
  const worker = fileURLToPath(new URL("./hostile-worker.ts", import.meta.url));
  const figures: Figure[] = [];
  for (const c of CASES) {
    const out = execFileSync(process.execPath, ["--import", "tsx", worker, c], { encoding: "utf8", maxBuffer: 1 << 20 });
    const r = JSON.parse(out.trim().split("\n").at(-1)!) as { inputMB: number; ms: number; peakRssDeltaMB: number; outcome: string };
    figures.push({ name: `${c} (${r.inputMB.toFixed(1)} MB input) -> ${r.outcome}: extra peak RSS`, value: r.peakRssDeltaMB, unit: "MB", reference: 256, better: "lower" });
    figures.push({ name: `${c}: time`, value: r.ms, unit: "ms", reference: 5000, better: "lower" });
  }
  return figures;
}
