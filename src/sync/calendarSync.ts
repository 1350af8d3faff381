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
import type { CalendarChanges, CalendarExchangePort, CalendarStorePort, RecordCounts, RecordStatePort } from "./ports.js";
import { pointReadsPay } from "./ports.js";
import { runActionQueue, SMALL_ITEM_ACTIONS_AT_ONCE } from "./actionQueue.js";
import { calendarWindow, inWindow, planCalendar, type CalendarAction, type Desired, type MirrorRecord, type Window } from "./calendarPlanner.js";

/** What the mirror remembers per occurrence: enough to plan and to derive the UC location. */
export interface CalendarRecord extends MirrorRecord {
  start?: string;
  end?: string;
  isAllDay?: boolean;
  showAs?: Occurrence["showAs"];
  /** The Exchange event could not be read (CALENDAR_EVENT_UNUSABLE): why. A copy mirrored before stays. */
  skipped?: { code: string; message: string };
}

export interface CalendarCursors {
  deltaLink?: string;
  window?: Window;
  /** Items on the store and skipped records, kept so an incremental run reads only the records its changes name. */
  counts?: RecordCounts;
  /** Set by the state port on load: a run stopped between its writes and its cursors. */
  countsStale?: boolean;
}

export type { CalendarExchangePort, CalendarStorePort } from "./ports.js";

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
  /** True once the run's time is up: no new action is taken and the cursors stay unsaved (src/sync/actionQueue.ts). */
  timeUp?(): boolean;
}

export interface CalendarSyncReport {
  actions: Record<CalendarAction["kind"], number>;
  items: number;
  windowMoved: boolean;
  deltaExpired: boolean;
  /** The busy set changed: the UC location must be looked at again. */
  busyChanged: boolean;
  /** Exchange events skipped now (each with its reason on its record). */
  skipped: number;
  /** Records that could not be read (STATE_CORRUPT). */
  corrupt: number;
  /** Records this run read (an incremental run reads those its changes name). */
  itemsRead: number;
  /** Actions left for a follow-up run because this run's time was up (its cursors are unsaved). */
  unfinished?: number;
}

/** The content hash: what the store item shows (lastModified alone changes nothing). */
export function occurrenceHash(o: Occurrence): string {
  const { lastModified: _ignored, ...content } = o;
  return crypto.createHash("sha256").update(JSON.stringify(content)).digest("base64url").slice(0, 22);
}

export async function syncCalendar(deps: CalendarSyncDeps): Promise<CalendarSyncReport> {
  const window = calendarWindow(deps.now, deps.window.pastDays, deps.window.futureDays);
  const saved = (await deps.state.loadCursors()) ?? {};
  const windowMoved = saved.window !== undefined && (saved.window.start !== window.start || saved.window.end !== window.end);
  const { loaded, ec, deltaExpired, sparse } = await readCalendar(deps, window, saved, windowMoved);
  // Records of events that were never mirrored (skipped) are not the planner's business; nor
  // are unreadable ones on incremental runs (full runs settle them against the listing).
  const corrupt = loaded.filter((r) => r.skipped?.code === "STATE_CORRUPT");
  for (const r of corrupt) deps.log.warn("calendar.state.corrupt", { ...deps.ids, syncKey: r.syncKey, code: "STATE_CORRUPT" });
  const usable = sparse ? loaded.filter((r) => r.skipped?.code !== "STATE_CORRUPT") : loaded;
  const records = new Map(usable.filter((r) => !isSkippedOnly(r)).map((r) => [r.syncKey, r]));
  const skippedOnly = new Map(usable.filter(isSkippedOnly).map((r) => [r.syncKey, r]));
  const before = countRecords(loaded);

  const { desired, occurrences } = desiredItems(ec, records, window);
  if (sparse) for (const r of corrupt) { desired.delete(r.syncKey); occurrences.delete(r.syncKey); }
  const skippedNow = await settleSkipped(ec, records, skippedOnly, desired, deps.state);

  const listing = ec.full ? await deps.store.listKeys() : undefined;
  const actions = planCalendar(desired, records, listing, deps.foreignItems);
  // Items an incremental run did not read are on the store, in the window and unchanged.
  const untouched = sparse ? saved.counts!.linked - countRecords(usable).linked : 0;
  guardRemovals(deps, actions, records.size + untouched, desired.size + untouched, windowMoved);

  const report: CalendarSyncReport = { actions: { write: 0, remove: 0, removeStray: 0, forget: 0 }, items: 0, windowMoved, deltaExpired, busyChanged: false, skipped: skippedNow, corrupt: corrupt.length, itemsRead: loaded.length };
  const busyBefore = busyDigest(records.values());
  const left = await applyAll(deps, actions, (a) => applyCalendarAction(deps, a, records, occurrences), report);
  if (left) {
    // Time is up: the next run starts from the item rows (the state port marks the counts stale), as after a crash.
    deps.log.info("calendar.sync.paused", { ...deps.ids, unfinished: left });
    return { ...report, unfinished: left, itemsRead: loaded.length };
  }

  const after = [...records.values(), ...[...skippedOnly.values()].filter((r) => !records.has(r.syncKey)), ...(sparse ? corrupt : [])];
  const counts = sparse ? moved(saved.counts!, before, countRecords(after)) : countRecords(after);
  // A run that met an unreadable record leaves no counts: the next one reads and counts all.
  await deps.state.saveCursors({ deltaLink: ec.deltaLink, window, ...(sparse && corrupt.length ? {} : { counts }) });
  report.items = counts.linked;
  if (sparse) report.skipped = counts.skipped;
  report.busyChanged = busyDigest(records.values()) !== busyBefore;
  return report;
}

/**
 * The records to compare with and Exchange's changes. An incremental run whose saved counts
 * hold reads only the records its changes name (a calendar change names its record by key:
 * the event id); first runs, full runs, the daily slide, an expired delta token and a run after
 * one that stopped midway (its pending writes are settled against a listing) read them all,
 * and so does a run whose changes name about as many records as it keeps (pointReadsPay).
 */
async function readCalendar(deps: CalendarSyncDeps, window: Window, saved: CalendarCursors, windowMoved: boolean) {
  const sparseOk = deps.mode !== "full" && !windowMoved && !!saved.deltaLink && !!saved.counts && !saved.countsStale && !!deps.state.loadItemsByKey;
  const all = sparseOk ? undefined : await deps.state.loadItems();
  // A crashed write (pending record) is settled against a fresh listing of both sides.
  const full = deps.mode === "full" || windowMoved || !saved.deltaLink || (all?.some((r) => r.pending) ?? false);
  const { ec, deltaExpired } = await calendarChanges(deps, window, full ? undefined : saved.deltaLink);
  if (all) return { loaded: all, ec, deltaExpired, sparse: false };
  const named = [...new Set([...ec.upserted.map((o) => o.id), ...ec.removed, ...ec.skipped.map((s) => s.id)])];
  // A change names its record by key: one point read each, while that costs less than a listing.
  if (ec.full || !pointReadsPay(named.length, saved.counts!)) return { loaded: await deps.state.loadItems(), ec, deltaExpired, sparse: false };
  return { loaded: named.length ? await deps.state.loadItemsByKey!(named) : [], ec, deltaExpired, sparse: true };
}

/** Items on the store, and records skipped with a reason, over some records. */
function countRecords(records: Iterable<CalendarRecord>): RecordCounts {
  const c: RecordCounts = { linked: 0, skipped: 0 };
  for (const r of records) { if (r.imapUid !== undefined) c.linked++; if (r.skipped) c.skipped++; }
  return c;
}

const moved = (saved: RecordCounts, was: RecordCounts, is: RecordCounts): RecordCounts =>
  ({ linked: Math.max(0, saved.linked + is.linked - was.linked), skipped: Math.max(0, saved.skipped + is.skipped - was.skipped) });

/** Exchange's changes in the window; an expired delta token starts the listing over. */
async function calendarChanges(deps: CalendarSyncDeps, window: Window, deltaLink: string | undefined): Promise<{ ec: CalendarChanges; deltaExpired: boolean }> {
  try {
    return { ec: await deps.exchange.changes(window, deltaLink), deltaExpired: false };
  } catch (e) {
    if (!isConnectorError(e, "DELTA_TOKEN_EXPIRED")) throw e;
    deps.log.warn("graph.calendar.delta.expired", deps.ids);
    return { ec: await deps.exchange.changes(window, undefined), deltaExpired: true };
  }
}

/** What the store should hold: the recorded items still in the window, updated by the changes (or the listing itself). */
function desiredItems(ec: CalendarChanges, records: Map<string, CalendarRecord>, window: Window) {
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
  return { desired, occurrences };
}

/** The mass-delete guard: a calendar that (almost) emptied at once is not mirrored as such (the daily slide excepted). */
function guardRemovals(deps: CalendarSyncDeps, actions: CalendarAction[], known: number, desired: number, windowMoved: boolean): void {
  const removals = actions.filter((a) => a.kind === "remove").length;
  if (!deps.limits.massDeleteOverride && known >= 5 && (desired === 0 || removals / known > deps.limits.massDeleteMaxShare) && removals > 0 && !windowMoved) {
    deps.log.error("calendar.massDelete.refused", { ...deps.ids, deletes: removals, known });
    throw new ConnectorError("MASS_DELETE_REFUSED", `refused to remove ${removals} of ${known} calendar items from the voice store`, { ...deps.ids, transient: false });
  }
}

/** Applies the plan (src/sync/actionQueue.ts); returns how many actions were left because the run's time was up. */
async function applyAll(deps: CalendarSyncDeps, actions: CalendarAction[], apply: (a: CalendarAction) => Promise<void>, report: CalendarSyncReport): Promise<number> {
  const { left } = await runActionQueue(actions, {
    parallel: deps.parallel ?? SMALL_ITEM_ACTIONS_AT_ONCE,
    timeUp: deps.timeUp,
    context: () => deps.ids,
    apply: async (a) => { await apply(a); report.actions[a.kind]++; },
    // An event Graph gave that cannot be mirrored is skipped before planning (settleSkipped); what fails here stops the run.
    itemFailed: async () => false,
  });
  return left;
}

async function applyCalendarAction(deps: CalendarSyncDeps, a: CalendarAction, records: Map<string, CalendarRecord>, occurrences: Map<string, Occurrence>): Promise<void> {
  const put = async (r: CalendarRecord) => { records.set(r.syncKey, r); await deps.state.putItem(r); };
  const drop = async (key: string) => { records.delete(key); await deps.state.deleteItem(key); };
  switch (a.kind) {
    case "write": {
      const o = occurrences.get(a.syncKey);
      // A skipped event whose earlier copy went from the store: nothing readable to write.
      if (!o && records.get(a.syncKey)?.skipped) return;
      if (!o) throw new ConnectorError("INTERNAL", `occurrence ${a.syncKey} to write is not in this run's changes`, deps.ids);
      const hash = occurrenceHash(o);
      const meta = { start: o.start, end: o.end, isAllDay: o.isAllDay, showAs: o.showAs };
      await put({ syncKey: a.syncKey, imapUid: a.replaceUid, hash, pending: true, ...meta });
      const text = occurrenceToICalendar(o, { redactPrivate: true });
      const uid = await deps.store.append(storeItemMessage({ kind: "calendar", key: a.syncKey, subject: isPrivate(o) ? "Busy" : (o.subject || "(no subject)"), body: text, date: new Date(o.isAllDay ? `${o.start}T00:00:00Z` : o.start) }));
      // The replaced item goes before the record says done: until then the record is
      // pending, and the next run settles it against a listing of the store.
      if (a.replaceUid !== undefined) await deps.store.remove(a.replaceUid);
      await put({ syncKey: a.syncKey, imapUid: uid, hash, ...meta });
      return;
    }
    case "remove":
      await deps.store.remove(a.imapUid);
      await drop(a.syncKey);
      return;
    case "removeStray":
      await deps.store.remove(a.imapUid);
      return;
    case "forget":
      await drop(a.syncKey);
      return;
  }
}

const isSkippedOnly = (r: CalendarRecord) => r.skipped !== undefined && r.imapUid === undefined;

/**
 * Events Exchange answered but that could not be read are skipped, each with its reason on its
 * record; a copy mirrored from an earlier, readable version stays as it is (desired with its
 * old hash) rather than being removed. A skip that Exchange no longer reports is forgotten.
 * Returns how many are skipped now.
 */
async function settleSkipped(ec: CalendarChanges, records: Map<string, CalendarRecord>, skippedOnly: Map<string, CalendarRecord>, desired: Map<string, Desired>, state: RecordStatePort<CalendarRecord, CalendarCursors>): Promise<number> {
  const now = new Map(ec.skipped.map((s) => [s.id, s]));
  for (const s of now.values()) {
    const why = { code: s.code, message: s.message };
    const r = records.get(s.id);
    if (r?.imapUid !== undefined && r.hash) {
      desired.set(s.id, { syncKey: s.id, hash: r.hash });
      if (r.skipped?.message !== why.message) { const next = { ...r, skipped: why }; records.set(s.id, next); await state.putItem(next); }
    } else if (skippedOnly.get(s.id)?.skipped?.message !== why.message) {
      skippedOnly.set(s.id, { syncKey: s.id, skipped: why });
      await state.putItem({ syncKey: s.id, skipped: why });
    }
  }
  const cleared = (id: string) => !now.has(id) && (ec.full || ec.removed.includes(id) || ec.upserted.some((o) => o.id === id));
  for (const id of [...skippedOnly.keys()]) if (cleared(id)) { skippedOnly.delete(id); await state.deleteItem(id); }
  for (const r of records.values()) {
    if (!r.skipped || !cleared(r.syncKey)) continue;
    const { skipped: _gone, ...rest } = r;
    records.set(r.syncKey, rest);
    await state.putItem(rest);
  }
  return now.size + [...skippedOnly.keys()].filter((id) => !now.has(id) && !cleared(id)).length;
}

/**
 * Every interval that is not free, with its show-as and all-day flag, as a digest: whatever a
 * profile's UC-location policy counts (src/sync/ucLocation.ts), it depends on nothing else.
 */
function busyDigest(records: Iterable<CalendarRecord>): string {
  const busy = [...records].filter((r) => !r.pending && r.showAs !== "free").map((r) => `${r.start}|${r.end}|${r.showAs}|${r.isAllDay === true}`).sort();
  return crypto.createHash("sha256").update(busy.join(",")).digest("base64url");
}
