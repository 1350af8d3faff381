/**
 * The user's UC location from the mirrored calendar (Avaya's "Change Location"): the profile's
 * text ("Meeting") while an event the profile's policy counts runs, nothing otherwise. Pure:
 * `now` is an argument.
 *
 * Policy (profile calendar.changeLocation): which show-as values count (busy, oof, tentative,
 * workingElsewhere, unknown) and whether an all-day out-of-office event counts. A show-as value
 * Graph adds later is read as "unknown", the same way the store item shows it (BUSY,
 * src/formats/icalendar.ts), so the two never disagree. An all-day event counts only when it
 * is out of office and the policy says so: an all-day "busy" block is not a meeting.
 */
import type { CalendarRecord } from "./calendarSync.js";

export const LOCATION_SHOW_AS = ["busy", "oof", "tentative", "workingElsewhere", "unknown"] as const;
export type LocationShowAs = (typeof LOCATION_SHOW_AS)[number];

export interface LocationPolicy {
  text: string;
  showAs: readonly LocationShowAs[];
  allDayOof: boolean;
}

/** Show-as as the policy reads it: a value it does not know is "unknown"; free is never counted. */
export function policyShowAs(showAs: string | undefined): LocationShowAs | "free" {
  if (showAs === "free") return "free";
  return (LOCATION_SHOW_AS as readonly string[]).includes(showAs ?? "") ? (showAs as LocationShowAs) : "unknown";
}

/** Does this mirrored event set the location under the policy? */
export function countsForLocation(r: CalendarRecord, policy: Pick<LocationPolicy, "showAs" | "allDayOof">): boolean {
  if (r.pending || r.start === undefined || r.end === undefined) return false;
  if (r.isAllDay) return policy.allDayOof && r.showAs === "oof";
  const s = policyShowAs(r.showAs);
  return s !== "free" && policy.showAs.includes(s);
}

/** Wall-clock interval of a record: all-day dates are whole UTC days (as the window compares them). */
function interval(r: CalendarRecord): readonly [number, number] {
  const at = (v: string) => Date.parse(r.isAllDay ? `${v.slice(0, 10)}T00:00:00Z` : v);
  return [at(r.start!), at(r.end!)] as const;
}

export interface LocationState {
  /** The text to show now, or null for none. */
  value: string | null;
  /** When the value may change next (an event starts or ends); undefined when nothing is ahead. */
  nextChange?: Date;
}

export function locationAt(records: Iterable<CalendarRecord>, now: Date, policy: LocationPolicy): LocationState {
  const t = now.getTime();
  const text = policy.text;
  const busy = [...records].filter((r) => countsForLocation(r, policy)).map(interval).filter(([s, e]) => e > t && e > s).sort((a, b) => a[0] - b[0]);
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
