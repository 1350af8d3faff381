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
  let active = false;
  let next = Infinity;
  for (const r of records) {
    if (!isBusyRecord(r)) continue;
    const s = Date.parse(r.start!);
    const e = Date.parse(r.end!);
    if (s <= t && t < e) { active = true; next = Math.min(next, e); }
    else if (s > t) next = Math.min(next, s);
  }
  return { value: active ? text : null, nextChange: Number.isFinite(next) ? new Date(next) : undefined };
}
