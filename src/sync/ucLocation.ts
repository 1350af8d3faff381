/**
 * The user's UC location from the mirrored calendar (Avaya's "Change Location"): the profile's
 * text ("Meeting") while a busy timed event runs, nothing otherwise. Pure: `now` is an argument.
 */
import { isBusyRecord, type CalendarRecord } from "./calendarSync.js";

export interface LocationState {
  /** The text to show now, or null for none. */
  value: string | null;
  /** When the value may change next (an event starts or ends); undefined when nothing is ahead. */
  nextChange?: Date;
}

export function locationAt(records: Iterable<CalendarRecord>, now: Date, text: string): LocationState {
  const t = now.getTime();
  const busy = [...records].filter(isBusyRecord).map((r) => [Date.parse(r.start!), Date.parse(r.end!)] as const).filter(([s, e]) => e > t && e > s).sort((a, b) => a[0] - b[0]);
  // Back-to-back and overlapping meetings are one busy block: the value changes at its edges only.
  let i = 0;
  while (i < busy.length && busy[i]![0] <= t) {
    let end = busy[i]![1];
    let j = i + 1;
    while (j < busy.length && busy[j]![0] <= end) { end = Math.max(end, busy[j]![1]); j++; }
    if (end > t) return { value: text, nextChange: new Date(end) };
    i = j;
  }
  return { value: null, nextChange: i < busy.length ? new Date(busy[i]![0]) : undefined };
}
