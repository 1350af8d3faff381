/**
 * NCRONTAB schedules as the Functions timer trigger reads them: six fields,
 * "{second} {minute} {hour} {day} {month} {day-of-week}", each "*", a number, a list "a,b",
 * a range "a-b" or a step "* /n" / "a-b/n"
 * (https://learn.microsoft.com/en-us/azure/azure-functions/functions-bindings-timer#ncrontab-expressions).
 * Times are UTC, as on Azure unless WEBSITE_TIME_ZONE is set.
 */
const RANGES: Array<[number, number]> = [[0, 59], [0, 59], [0, 23], [1, 31], [1, 12], [0, 6]];

export interface Schedule {
  matches(d: Date): boolean;
  /** The first matching whole second strictly after `from`. */
  next(from: Date): Date;
}

function field(spec: string, [min, max]: [number, number]): Set<number> {
  const out = new Set<number>();
  for (const part of spec.split(",")) {
    const [range, stepText] = part.split("/");
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new Error(`bad step in "${spec}"`);
    let lo: number;
    let hi: number;
    if (range === "*") { lo = min; hi = max; }
    else if (range!.includes("-")) { const [a, b] = range!.split("-").map(Number); lo = a!; hi = b!; }
    else { lo = Number(range); hi = stepText === undefined ? lo : max; }
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < min || hi > max || lo > hi) throw new Error(`"${spec}" is outside ${min}-${max}`);
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

export function parseSchedule(expr: string): Schedule {
  const parts = expr.trim().split(/\s+/);
  if (parts.length !== 6) throw new Error(`NCRONTAB needs 6 fields, got ${parts.length}: "${expr}"`);
  const [sec, min, hour, day, month, dow] = parts.map((p, i) => field(p, RANGES[i]!));
  const matches = (d: Date) =>
    sec!.has(d.getUTCSeconds()) && min!.has(d.getUTCMinutes()) && hour!.has(d.getUTCHours()) &&
    day!.has(d.getUTCDate()) && month!.has(d.getUTCMonth() + 1) && dow!.has(d.getUTCDay());
  return {
    matches,
    next(from) {
      const t = new Date(Math.floor(from.getTime() / 1000) * 1000 + 1000);
      for (let i = 0; i < 366 * 24 * 3600; i++, t.setTime(t.getTime() + 1000)) if (matches(t)) return new Date(t);
      throw new Error(`"${expr}" never fires`);
    },
  };
}
