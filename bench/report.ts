/**
 * Benchmark figures: each is printed with its reference (the target from the issue) and the
 * ratio measured/reference, so a reader sees at once how far from the goal it is. Benchmarks
 * report, they do not assert: speed is not checked by timed unit tests.
 */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** The target; `better` says which direction meets it. */
  reference: number;
  better: "lower" | "higher";
}

export function meets(f: Figure): boolean {
  return f.better === "lower" ? f.value <= f.reference : f.value >= f.reference;
}

export function formatFigures(title: string, figures: Figure[]): string {
  const rows = figures.map((f) => [
    f.name,
    `${round(f.value)} ${f.unit}`,
    `${f.better === "lower" ? "<=" : ">="} ${round(f.reference)} ${f.unit}`,
    f.reference === 0 ? "-" : (f.value / f.reference).toFixed(2),
    meets(f) ? "yes" : "NO",
  ]);
  const header = ["figure", "measured", "reference", "ratio", "meets"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  return [`## ${title}`, line(header), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...rows.map(line)].join("\n");
}

function round(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}
