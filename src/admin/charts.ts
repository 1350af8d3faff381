/**
 * Small charts for the status page, drawn on the server as inline SVG: no script, no external
 * load (the page's CSP allows neither). Each chart is an image with a title and a description
 * that reads out every figure, so a screen reader gets what the picture shows
 * (https://www.w3.org/WAI/tutorials/images/complex/).
 */
import type { HourBucket } from "../state/runHistory.js";

export interface HourSeries { hours: string[]; runs: number[]; failed: number[]; lagMaxS: number[] }

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The last 24 UTC hours up to `now` ("2026-11-30T17"), oldest first, filled from buckets (summed over links). */
export function lastDay(buckets: HourBucket[][], now: number): HourSeries {
  const hours = Array.from({ length: 24 }, (_, i) => new Date(now - (23 - i) * 3600_000).toISOString().slice(0, 13));
  const runs = hours.map(() => 0);
  const failed = hours.map(() => 0);
  const lagMaxMs = hours.map(() => 0);
  const index = new Map(hours.map((h, i) => [h, i]));
  const first = hours[0]!;
  // Thousands of links x 24 buckets per page view: plain loops, the older hours skipped by a string compare.
  for (const list of buckets) {
    for (let j = 0; j < list.length; j++) {
      const b = list[j]!;
      if (b.hour < first) continue;
      const i = index.get(b.hour);
      if (i === undefined) continue;
      runs[i]! += b.runs;
      failed[i]! += b.failed;
      if (b.lagMaxMs > lagMaxMs[i]!) lagMaxMs[i] = b.lagMaxMs;
    }
  }
  return { hours, runs, failed, lagMaxS: lagMaxMs.map((ms) => Math.round(ms / 100) / 10) };
}

let ids = 0;

/**
 * A bar per hour. `values` are drawn as bars, `part` (optional) as their darker lower part
 * (failures within the runs).
 */
export function hourChart(opts: { title: string; unit: string; hours: string[]; values: number[]; part?: { label: string; values: number[] } }): string {
  const id = `chart-${++ids}`;
  const W = 336, H = 130, left = 36, bottom = 20, top = 10, bar = (W - left - 4) / opts.hours.length;
  const max = Math.max(1, ...opts.values);
  const y = (v: number) => top + (H - top - bottom) * (1 - v / max);
  const hourLabel = (h: string) => `${h.slice(11, 13)}:00`;
  const described = opts.hours.map((h, i) => `${hourLabel(h)} ${fmt(opts.values[i]!)}${opts.part && opts.part.values[i] ? ` (${opts.part.values[i]} ${opts.part.label})` : ""}`).filter((_, i) => opts.values[i]);
  const total = opts.values.reduce((a, b) => a + b, 0);
  const desc = total === 0 ? `No ${opts.unit} in the last 24 hours.` : `${opts.unit} per hour, UTC, last 24 hours (hours with none left out): ${described.join("; ")}.`;
  const bars = opts.hours.map((h, i) => {
    const v = opts.values[i]!;
    if (!v) return "";
    const x = left + i * bar + 1;
    const p = opts.part?.values[i] ?? 0;
    return `<g><title>${esc(`${hourLabel(h)} UTC: ${fmt(v)} ${opts.unit}${p ? `, ${p} ${opts.part!.label}` : ""}`)}</title><rect class="bar" x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(bar - 2).toFixed(1)}" height="${(H - bottom - y(v)).toFixed(1)}"/>${p ? `<rect class="bar-part" x="${x.toFixed(1)}" y="${y(p).toFixed(1)}" width="${(bar - 2).toFixed(1)}" height="${(H - bottom - y(p)).toFixed(1)}"/>` : ""}</g>`;
  }).join("");
  return `<figure class="chart"><svg viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${id}-t ${id}-d" focusable="false">`
    + `<title id="${id}-t">${esc(opts.title)}</title><desc id="${id}-d">${esc(desc)}</desc>`
    + `<line class="axis" x1="${left}" y1="${H - bottom}" x2="${W - 2}" y2="${H - bottom}"/><line class="axis" x1="${left}" y1="${top}" x2="${left}" y2="${H - bottom}"/>`
    + `<text x="${left - 4}" y="${top + 4}" text-anchor="end">${esc(fmt(max))}</text><text x="${left - 4}" y="${H - bottom}" text-anchor="end">0</text>`
    + `<text x="${left}" y="${H - 5}">${esc(hourLabel(opts.hours[0]!))}</text><text x="${W - 2}" y="${H - 5}" text-anchor="end">${esc(hourLabel(opts.hours.at(-1)!))} UTC</text>`
    + bars + `</svg><figcaption>${esc(opts.title)}${opts.part ? ` <span class="key-part">(darker: ${esc(opts.part.label)})</span>` : ""}</figcaption></figure>`;
}

const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

/** The two charts of a tenant or a link: runs (with failures) and the worst sync lag, per hour. */
export function dayCharts(name: string, s: HourSeries): string {
  return `<div class="charts">${hourChart({ title: `${name}: runs per hour that changed something or failed`, unit: "runs", hours: s.hours, values: s.runs, part: { label: "failed", values: s.failed } })}`
    + `${hourChart({ title: `${name}: sync lag per hour (worst, seconds from trigger to done)`, unit: "seconds lag", hours: s.hours, values: s.lagMaxS })}</div>`;
}
