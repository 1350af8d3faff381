/**
 * Benchmark figures: each is printed with its reference (a target the measurement must meet,
 * never the measured value itself) and the ratio measured/reference, so a reader sees at once
 * how far from the goal it is. A figure that misses its reference makes `npm run bench` exit 1.
 * Figures are measured at the connector's default settings; one that is not says which setting
 * it changed and why (`setting`), and the table prints it.
 */
import { tableOps } from "../src/state/tables.js";

export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** The target; `better` says which direction meets it ("equal": exactly this, e.g. a count). */
  reference: number;
  better: "lower" | "higher" | "equal";
  /** A non-default setting this figure was measured with, and why. */
  setting?: string;
}

export function meets(f: Figure): boolean {
  if (Number.isNaN(f.value)) return false; // nothing measured meets nothing
  return f.better === "lower" ? f.value <= f.reference : f.better === "higher" ? f.value >= f.reference : f.value === f.reference;
}

const OP = { lower: "<=", higher: ">=", equal: "=" } as const;

export function formatFigures(title: string, figures: Figure[]): string {
  const rows = figures.map((f) => [
    f.name,
    `${round(f.value)} ${f.unit}`,
    `${OP[f.better]} ${round(f.reference)} ${f.unit}`,
    f.reference === 0 ? "-" : (f.value / f.reference).toFixed(2),
    meets(f) ? "yes" : "NO",
  ]);
  const header = ["figure", "measured", "reference", "ratio", "meets"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  const settings = [...new Set(figures.flatMap((f) => (f.setting ? [f.setting] : [])))];
  return [`## ${title}`, line(header), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...rows.map(line),
    ...(settings.length ? ["", "Settings changed from the defaults:", ...settings.map((s) => `- ${s}`)] : [])].join("\n");
}

function round(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

/** Percentile over every sample; a sample that timed out counts as Infinity, so timeouts raise
 *  the percentile (and fail its reference) instead of vanishing from it. */
export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

/** The process's peak resident set size in bytes, as the kernel recorded it (getrusage ru_maxrss),
 *  not sampled: a short spike between samples still counts. */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** Table requests that write (upserts, deletes, entity group transactions) this process made so far. */
export const stateWrites = () => ["upsertEntity", "updateEntity", "createEntity", "deleteEntity", "submitTransaction"].reduce((n, m) => n + (tableOps.get(m) ?? 0), 0);
