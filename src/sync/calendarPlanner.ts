/**
 * The calendar mirror planner: pure, no I/O; `now` is an argument.
 *
 * One-way (Exchange -> voice store): each occurrence in the window is one item in the store's
 * calendar folder. An occurrence that changed is replaced, one that was deleted, cancelled or
 * left the window is removed, so nothing outside the window lingers. A full run also compares
 * the store's listing (by the X-UMC-Key header) and repairs what drifted there: items deleted
 * on the store are written again, copies without a record (a crash between APPEND and the
 * record) are adopted or removed.
 */

export interface Window { start: string; end: string }

/** The window for `now`: whole days from `pastDays` back to `futureDays` ahead (UTC days). */
export function calendarWindow(now: Date, pastDays: number, futureDays: number): Window {
  const day = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return { start: new Date(day - pastDays * 86_400_000).toISOString(), end: new Date(day + (futureDays + 1) * 86_400_000).toISOString() };
}

/** Overlap with the window; all-day dates are compared as UTC days. */
export function inWindow(o: { start: string; end: string; isAllDay: boolean }, w: Window): boolean {
  const s = o.isAllDay ? `${o.start}T00:00:00.000Z` : o.start;
  const e = o.isAllDay ? `${o.end}T00:00:00.000Z` : o.end;
  return s < w.end && (e > w.start || (e === s && s >= w.start));
}

export interface MirrorRecord {
  syncKey: string;
  imapUid?: number;
  hash?: string;
  /** An APPEND was intended; the store may or may not hold the item. */
  pending?: boolean;
}

export interface Desired { syncKey: string; hash: string }

export type CalendarAction =
  | { kind: "write"; syncKey: string; replaceUid?: number }
  | { kind: "remove"; syncKey: string; imapUid: number }
  | { kind: "removeStray"; imapUid: number }
  | { kind: "forget"; syncKey: string };

/**
 * `store` (full runs only): the store's items by UID with their key. Without it the records
 * are trusted for what the store holds.
 */
export function planCalendar(desired: Map<string, Desired>, records: Map<string, MirrorRecord>, store?: Map<number, string | undefined>, foreign: "keep" | "remove" = "keep"): CalendarAction[] {
  const actions: CalendarAction[] = [];
  const onStore = new Map<string, number[]>();
  if (store) for (const [uid, key] of store) { if (key) onStore.set(key, [...(onStore.get(key) ?? []), uid].sort((a, b) => a - b)); }
  const claimed = new Set<number>();
  for (const [key, d] of desired) {
    const r = records.get(key);
    const uids = onStore.get(key) ?? [];
    if (store) {
      const keep = r?.imapUid !== undefined && uids.includes(r.imapUid) ? r.imapUid : undefined;
      if (keep !== undefined && !r!.pending && r!.hash === d.hash) { claimed.add(keep); continue; }
      // Written, not recorded (or stale): write it again and drop every other copy.
      actions.push({ kind: "write", syncKey: key, replaceUid: keep });
      if (keep !== undefined) claimed.add(keep);
      continue;
    }
    if (!r) actions.push({ kind: "write", syncKey: key });
    else if (r.pending || r.imapUid === undefined) actions.push({ kind: "write", syncKey: key });
    else if (r.hash !== d.hash) actions.push({ kind: "write", syncKey: key, replaceUid: r.imapUid });
  }
  for (const [key, r] of records) {
    if (desired.has(key)) continue;
    if (r.imapUid !== undefined && (!store || store.has(r.imapUid))) { actions.push({ kind: "remove", syncKey: key, imapUid: r.imapUid }); if (store) claimed.add(r.imapUid); }
    else actions.push({ kind: "forget", syncKey: key });
  }
  // Anything else on the store with our header is a stray copy. Items without it are not ours
  // (another product wrote them before the move): left alone, or removed when the profile says
  // so (calendar.foreignItems), so the voice system reads one calendar, never two.
  if (store) for (const [uid, key] of store) if ((key || foreign === "remove") && !claimed.has(uid)) actions.push({ kind: "removeStray", imapUid: uid });
  return actions;
}
