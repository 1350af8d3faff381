/**
 * The calendar mirror executor: one run for one linked mailbox (Exchange -> voice store).
 *
 * 1. The window for today (profile: past and future days). When it moved since the last run
 *    (the daily slide) or the run is a full one, calendarView delta starts over with the new
 *    window: a fresh listing, and whatever it no longer holds leaves the store.
 * 2. Desired items: the recorded ones, updated by the delta (cancelled and out-of-window
 *    occurrences dropped), or the listing itself.
 * 3. Plan (pure) and apply: a write records its intent (pending) before the APPEND and
 *    removes the replaced item after it; a run that finds pending records lists the store
 *    first, so a crash between APPEND and record never leaves a second copy.
 * 4. Cursors last.
 */
import crypto from "node:crypto";
import { ConnectorError, ensureConnectorError, isConnectorError } from "../errors.js";
import type { Logger } from "../log.js";
import { occurrenceToICalendar, isPrivate, type Occurrence } from "../formats/icalendar.js";
import { storeItemMessage } from "../formats/storeItem.js";
import type { CalendarChanges } from "../graph/calendar.js";
import type { RecordStatePort } from "../state/stateStore.js";
import { calendarWindow, inWindow, planCalendar, type CalendarAction, type Desired, type MirrorRecord, type Window } from "./calendarPlanner.js";

export interface CalendarStorePort {
  append(source: Buffer): Promise<number>;
  remove(uid: number): Promise<void>;
  listKeys(): Promise<Map<number, string | undefined>>;
}

export interface CalendarExchangePort {
  changes(window: Window, deltaLink: string | undefined): Promise<CalendarChanges>;
}

/** What the mirror remembers per occurrence: enough to plan and to derive the UC location. */
export interface CalendarRecord extends MirrorRecord {
  start?: string;
  end?: string;
  isAllDay?: boolean;
  showAs?: Occurrence["showAs"];
}

export interface CalendarCursors { deltaLink?: string; window?: Window }

export interface CalendarSyncDeps {
  store: CalendarStorePort;
  exchange: CalendarExchangePort;
  state: RecordStatePort<CalendarRecord, CalendarCursors>;
  window: { pastDays: number; futureDays: number };
  now: Date;
  limits: { massDeleteMaxShare: number; massDeleteOverride?: boolean };
  log: Logger;
  ids: { tenantId: string; mailboxId: string };
  mode?: "incremental" | "full";
  parallel?: number;
  /** Store items umconnect did not write: left alone (default) or removed (profile calendar.foreignItems). */
  foreignItems?: "keep" | "remove";
}

export interface CalendarSyncReport {
  actions: Record<CalendarAction["kind"], number>;
  items: number;
  windowMoved: boolean;
  deltaExpired: boolean;
  /** The busy set changed: the UC location must be looked at again. */
  busyChanged: boolean;
}

/** The content hash: what the store item shows (lastModified alone changes nothing). */
export function occurrenceHash(o: Occurrence): string {
  const { lastModified: _ignored, ...content } = o;
  return crypto.createHash("sha256").update(JSON.stringify(content)).digest("base64url").slice(0, 22);
}

export async function syncCalendar(deps: CalendarSyncDeps): Promise<CalendarSyncReport> {
  const { store, exchange, state, log } = deps;
  const window = calendarWindow(deps.now, deps.window.pastDays, deps.window.futureDays);
  const cursors = (await state.loadCursors()) ?? {};
  const records = new Map((await state.loadItems()).map((r) => [r.syncKey, r]));
  const windowMoved = cursors.window !== undefined && (cursors.window.start !== window.start || cursors.window.end !== window.end);
  // A crashed write (pending record) is settled against a fresh listing of both sides.
  const full = deps.mode === "full" || windowMoved || !cursors.deltaLink || [...records.values()].some((r) => r.pending);

  let deltaExpired = false;
  let ec: CalendarChanges;
  try {
    ec = await exchange.changes(window, full ? undefined : cursors.deltaLink);
  } catch (e) {
    if (!isConnectorError(e, "DELTA_TOKEN_EXPIRED")) throw e;
    deltaExpired = true;
    log.warn("graph.calendar.delta.expired", deps.ids);
    ec = await exchange.changes(window, undefined);
  }

  const occurrences = new Map<string, Occurrence>();
  const desired = new Map<string, Desired>();
  if (!ec.full) for (const r of records.values()) if (r.hash && r.start && r.end && inWindow({ start: r.start, end: r.end, isAllDay: r.isAllDay ?? false }, window)) desired.set(r.syncKey, { syncKey: r.syncKey, hash: r.hash });
  for (const id of ec.removed) desired.delete(id);
  for (const o of ec.upserted) {
    // Cancelled meetings and occurrences outside the window are not mirrored.
    if (o.isCancelled || !inWindow(o, window)) { desired.delete(o.id); continue; }
    occurrences.set(o.id, o);
    desired.set(o.id, { syncKey: o.id, hash: occurrenceHash(o) });
  }

  const listing = ec.full ? await store.listKeys() : undefined;
  const actions = planCalendar(desired, records, listing, deps.foreignItems);
  const removals = actions.filter((a) => a.kind === "remove").length;
  if (!deps.limits.massDeleteOverride && records.size >= 5 && (desired.size === 0 || removals / records.size > deps.limits.massDeleteMaxShare) && removals > 0 && !windowMoved) {
    log.error("calendar.massDelete.refused", { ...deps.ids, deletes: removals, known: records.size });
    throw new ConnectorError("MASS_DELETE_REFUSED", `refused to remove ${removals} of ${records.size} calendar items from the voice store`, { ...deps.ids, transient: false });
  }

  const report: CalendarSyncReport = { actions: { write: 0, remove: 0, removeStray: 0, forget: 0 }, items: 0, windowMoved, deltaExpired, busyChanged: false };
  const busyBefore = busyDigest(records.values());
  const put = async (r: CalendarRecord) => { records.set(r.syncKey, r); await state.putItem(r); };
  const drop = async (key: string) => { records.delete(key); await state.deleteItem(key); };
  const apply = async (a: CalendarAction) => {
    switch (a.kind) {
      case "write": {
        const o = occurrences.get(a.syncKey);
        if (!o) throw new ConnectorError("INTERNAL", `occurrence ${a.syncKey} to write is not in this run's changes`, deps.ids);
        const hash = occurrenceHash(o);
        const meta = { start: o.start, end: o.end, isAllDay: o.isAllDay, showAs: o.showAs };
        await put({ syncKey: a.syncKey, imapUid: a.replaceUid, hash, pending: true, ...meta });
        const text = occurrenceToICalendar(o, { redactPrivate: true });
        const uid = await store.append(storeItemMessage({ kind: "calendar", key: a.syncKey, subject: isPrivate(o) ? "Busy" : (o.subject || "(no subject)"), body: text, date: new Date(o.isAllDay ? `${o.start}T00:00:00Z` : o.start) }));
        // The replaced item goes before the record says done: until then the record is
        // pending, and the next run settles it against a listing of the store.
        if (a.replaceUid !== undefined) await store.remove(a.replaceUid);
        await put({ syncKey: a.syncKey, imapUid: uid, hash, ...meta });
        return;
      }
      case "remove":
        await store.remove(a.imapUid);
        await drop(a.syncKey);
        return;
      case "removeStray":
        await store.remove(a.imapUid);
        return;
      case "forget":
        await drop(a.syncKey);
        return;
    }
  };
  const queue = [...actions];
  let fatal: ConnectorError | undefined;
  const worker = async () => {
    for (let a = queue.shift(); a && !fatal; a = queue.shift()) {
      try { await apply(a); report.actions[a.kind]++; } catch (e) { fatal ??= ensureConnectorError(e, "INTERNAL", deps.ids); }
    }
  };
  await Promise.all(Array.from({ length: Math.min(deps.parallel ?? 8, queue.length) }, worker));
  if (fatal) throw fatal;

  await state.saveCursors({ deltaLink: ec.deltaLink, window });
  report.items = records.size;
  report.busyChanged = busyDigest(records.values()) !== busyBefore;
  return report;
}

/** The busy intervals, as a digest: the UC location depends on nothing else. */
function busyDigest(records: Iterable<CalendarRecord>): string {
  const busy = [...records].filter(isBusyRecord).map((r) => `${r.start}|${r.end}`).sort();
  return crypto.createHash("sha256").update(busy.join(",")).digest("base64url");
}

/** Busy or out of office, timed (an all-day block is not a meeting). */
export const isBusyRecord = (r: CalendarRecord) => !r.pending && !r.isAllDay && (r.showAs === "busy" || r.showAs === "oof") && r.start !== undefined && r.end !== undefined;
