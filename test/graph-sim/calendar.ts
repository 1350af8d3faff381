/**
 * The primary calendar: events (single instances and series masters), calendarView with
 * series expanded into occurrences and exceptions, and calendarView delta
 * (https://learn.microsoft.com/en-us/graph/api/event-delta, /graph/delta-query-events):
 *  - startDateTime and endDateTime are required on the first call and baked into the tokens;
 *  - no $select, $expand, $filter or $orderby;
 *  - times come back in UTC unless `Prefer: outlook.timezone` asks otherwise (not simulated);
 *  - `@removed` is also sent for events outside the window that changed (graph-facts.md,
 *    "Removals"), so clients must filter by the window themselves.
 * Occurrence ids are opaque and stable per (series, original start), as Graph's are.
 */
import crypto from "node:crypto";
import { newChangeKey, newId, type SimEvent, type SimEventData, type SimRecurrence, type SimUser } from "./model.js";
import { ODataError } from "./odata.js";
import { graphDateTime, utcToZoned, zonedToUtc } from "./timezones.js";

export interface CalendarHost {
  origin: string;
  notifyEvent(user: SimUser, id: string, changeKey: string, change: "created" | "updated" | "deleted"): void;
}

export interface Instance {
  id: string;
  event: SimEvent;
  type: "singleInstance" | "occurrence" | "exception";
  originalStart?: Date;
  start: Date;
  end: Date;
  data: SimEventData;
}

interface Res { status: number; headers?: Record<string, string>; body?: unknown }

const DAY = 86_400_000;
const WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
const MAX_EXPANSION = 20_000;

function instanceBounds(data: SimEventData): { start: Date; end: Date } {
  if (data.isAllDay) {
    // All-day events are floating dates: midnight to midnight whatever the zone.
    return { start: new Date(`${data.start.dateTime.slice(0, 10)}T00:00:00Z`), end: new Date(`${data.end.dateTime.slice(0, 10)}T00:00:00Z`) };
  }
  return { start: zonedToUtc(data.start.dateTime, data.start.timeZone), end: zonedToUtc(data.end.dateTime, data.end.timeZone) };
}

const addDays = (date: string, n: number) => new Date(Date.parse(`${date}T00:00:00Z`) + n * DAY).toISOString().slice(0, 10);

const INDEX: Record<string, number> = { first: 0, second: 1, third: 2, fourth: 3, last: -1 };
const daysIn = (y: number, m: number) => new Date(Date.UTC(y, m, 0)).getUTCDate(); // m: 1-12
const ymd = (y: number, m: number, d: number) => new Date(Date.UTC(y, m - 1, d)).toISOString().slice(0, 10);

/**
 * The date a monthly or yearly pattern names in one month (y, m: 1-12), or undefined.
 * absolute: dayOfMonth, the last day when the month is shorter (EWS AbsoluteMonthlyRecurrence,
 * https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/absolutemonthlyrecurrence:
 * "if this value is greater than the number of days in a month, the last day of the month is
 * assumed"); relative: the index-th of the days that are in daysOfWeek, counted together ("the
 * first Thursday or Friday"), or the last of them
 * (https://learn.microsoft.com/en-us/graph/api/resources/recurrencepattern).
 */
function dateInMonth(p: SimRecurrence["pattern"], y: number, m: number): string | undefined {
  if (p.type === "absoluteMonthly" || p.type === "absoluteYearly") return ymd(y, m, Math.min(p.dayOfMonth ?? 1, daysIn(y, m)));
  const days = new Set((p.daysOfWeek ?? []).map((x) => WEEKDAYS.indexOf(x.toLowerCase())));
  const matches: number[] = [];
  for (let d = 1; d <= daysIn(y, m); d++) if (days.has(new Date(Date.UTC(y, m - 1, d)).getUTCDay())) matches.push(d);
  const i = INDEX[(p.index ?? "first").toLowerCase()] ?? 0;
  const d = i < 0 ? matches.at(-1) : matches[i];
  return d === undefined ? undefined : ymd(y, m, d);
}

/**
 * Candidate local dates of a series, in order, from its range start (patternedRecurrence,
 * https://learn.microsoft.com/en-us/graph/outlook-schedule-recurring-events). Monthly and
 * yearly series count their interval from the first period that has a date on or after the
 * start ("the first Thursday of every other month starting August 29, 2017 ... the first
 * occurrence of this series will be in September"); weekly ones from the week (by
 * firstDayOfWeek, default Sunday) that holds the start. Numbered ranges count every
 * occurrence, cancelled ones included; endDate is inclusive.
 */
function* seriesDates(r: SimRecurrence): Generator<string> {
  const p = r.pattern;
  const interval = Math.max(1, p.interval || 1);
  const start = r.range.startDate;
  let emitted = 0;
  const done = (d: string) => (r.range.type === "endDate" && r.range.endDate !== undefined && d > r.range.endDate) || (r.range.type === "numbered" && emitted >= (r.range.numberOfOccurrences ?? 0));
  if (p.type === "daily") {
    for (let d = start, i = 0; i < MAX_EXPANSION; d = addDays(d, interval), i++) { if (done(d)) return; emitted++; yield d; }
    return;
  }
  if (p.type === "weekly") {
    const days = new Set((p.daysOfWeek ?? []).map((x) => WEEKDAYS.indexOf(x.toLowerCase())));
    const first = WEEKDAYS.indexOf((p.firstDayOfWeek ?? "sunday").toLowerCase());
    const back = (new Date(`${start}T00:00:00Z`).getUTCDay() - first + 7) % 7;
    const weekStart = addDays(start, -back);
    for (let w = 0; w < MAX_EXPANSION; w += interval) {
      for (let k = 0; k < 7; k++) {
        const d = addDays(weekStart, w * 7 + k);
        if (d < start || !days.has(new Date(`${d}T00:00:00Z`).getUTCDay())) continue;
        if (done(d)) return;
        emitted++;
        yield d;
      }
    }
    return;
  }
  // Monthly (every interval months) and yearly (every interval years, in pattern.month).
  const yearly = p.type === "absoluteYearly" || p.type === "relativeYearly";
  const [y0, m0] = start.split("-").map(Number) as [number, number];
  const period = (k: number) => (yearly ? { y: y0 + k, m: p.month ?? m0 } : { y: y0 + Math.floor((m0 - 1 + k) / 12), m: ((m0 - 1 + k) % 12) + 1 });
  let k = 0;
  while (k < 24) { const { y, m } = period(k); const d = dateInMonth(p, y, m); if (d && d >= start) break; k++; }
  for (let i = 0; i < MAX_EXPANSION; i++, k += interval) {
    const { y, m } = period(k);
    const d = dateInMonth(p, y, m);
    if (!d) continue;
    if (done(d)) return;
    emitted++;
    yield d;
  }
}

const occurrenceId = (ev: SimEvent, originalStart: Date) => `${ev.id}_${Buffer.from(originalStart.toISOString()).toString("base64url")}`;

/** Instances of one event overlapping [from, to). */
export function expand(ev: SimEvent, from: Date, to: Date): Instance[] {
  const overlaps = (s: Date, e: Date) => s < to && (e > from || (+e === +s && +s >= +from));
  if (!ev.recurrence) {
    const b = instanceBounds(ev);
    return overlaps(b.start, b.end) ? [{ id: ev.id, event: ev, type: "singleInstance", start: b.start, end: b.end, data: ev }] : [];
  }
  const master = instanceBounds(ev);
  const duration = +master.end - +master.start;
  const time = ev.start.dateTime.slice(10); // "T09:00:00.0000000"
  const out: Instance[] = [];
  for (const date of seriesDates(ev.recurrence)) {
    const originalStart = ev.isAllDay ? new Date(`${date}T00:00:00Z`) : zonedToUtc(`${date}${time}`, ev.start.timeZone);
    if (originalStart >= to) break;
    const exc = ev.exceptions.get(originalStart.toISOString());
    if (exc?.deleted) continue; // a cancelled occurrence is gone from calendarView
    let data: SimEventData = ev;
    let start = originalStart;
    let end = new Date(+originalStart + duration);
    if (exc && !exc.deleted) {
      data = { ...ev, ...exc.changes };
      if (exc.changes.start || exc.changes.end) ({ start, end } = instanceBounds(data));
    }
    if (overlaps(start, end)) out.push({ id: occurrenceId(ev, originalStart), event: ev, type: exc ? "exception" : "occurrence", originalStart, start, end, data });
  }
  return out;
}

/**
 * One instance as Graph answers it. `zone`: the `Prefer: outlook.timezone` asked for (UTC when
 * none, as calendarView documents); an event's test `answer` overrides what is asked.
 */
export function instanceJson(i: Instance, zone = "UTC"): Record<string, unknown> {
  const d = i.data;
  const tz = d.answer?.timeZone ?? zone;
  const wall = (t: Date) => { try { return utcToZoned(t, tz); } catch { return graphDateTime(t); } }; // a zone no one knows: answered as it is
  const when = (t: Date) => ({ dateTime: d.isAllDay ? `${t.toISOString().slice(0, 10)}T00:00:00.0000000` : tz.toUpperCase() === "UTC" ? graphDateTime(t) : wall(t), timeZone: d.isAllDay ? (d.answer?.timeZone ?? zone) : tz });
  const exc = i.originalStart ? i.event.exceptions.get(i.originalStart.toISOString()) : undefined;
  const changeKey = exc ? crypto.createHash("sha256").update(i.event.changeKey + JSON.stringify(exc)).digest("base64").slice(0, 16) : i.event.changeKey;
  return {
    "@odata.type": "#microsoft.graph.event", "@odata.etag": `W/"${changeKey}"`, id: i.id, changeKey,
    createdDateTime: i.event.createdDateTime, lastModifiedDateTime: i.event.lastModifiedDateTime, iCalUId: i.event.iCalUId,
    type: i.type, seriesMasterId: i.type === "singleInstance" ? null : i.event.id, originalStart: i.originalStart?.toISOString() ?? null,
    originalStartTimeZone: i.event.start.timeZone, originalEndTimeZone: i.event.end.timeZone,
    subject: d.subject, bodyPreview: d.body.content.slice(0, 255), body: d.body, start: when(i.start), end: when(i.end), isAllDay: d.isAllDay,
    showAs: d.showAs, sensitivity: d.sensitivity, location: d.location, organizer: d.organizer, attendees: d.attendees,
    responseStatus: d.responseStatus, isCancelled: d.isCancelled, isOrganizer: d.responseStatus.response === "organizer",
    recurrence: null,
    ...d.answer?.fields,
  };
}

const version = (i: Instance) => crypto.createHash("sha256").update(JSON.stringify(instanceJson(i))).digest("base64");

interface ViewToken { userId: string; from: Date; to: Date; seq: number; snapshot: Map<string, string> }

export class CalendarModel {
  private readonly deltaTokens = new Map<string, ViewToken>();
  private readonly skipTokens = new Map<string, { token: ViewToken; items: Array<Record<string, unknown>>; pageSize: number }>();

  constructor(private readonly host: CalendarHost) {}

  instances(user: SimUser, from: Date, to: Date): Instance[] {
    return [...user.events.values()].flatMap((e) => expand(e, from, to)).sort((a, b) => +a.start - +b.start || a.id.localeCompare(b.id));
  }

  route(method: string, rest: string, q: URLSearchParams, user: SimUser, prefer: string[]): Res {
    let m: RegExpMatchArray | null;
    if (rest === "/calendarView/delta" && method === "GET") return this.delta(user, q, prefer);
    if (rest === "/calendarView" && method === "GET") {
      const { from, to } = windowOf(q);
      const all = this.instances(user, from, to);
      const top = Math.min(Number(q.get("$top") ?? 10), 1000);
      const skip = Number(q.get("$skip") ?? 0);
      const body: Record<string, unknown> = { value: all.slice(skip, skip + top).map((i) => instanceJson(i, preferredZone(prefer))) };
      if (skip + top < all.length) { const next = new URLSearchParams(q); next.set("$skip", String(skip + top)); body["@odata.nextLink"] = `${this.host.origin}/v1.0/users/${user.id}/calendarView?${next}`; }
      return { status: 200, body };
    }
    if ((m = rest.match(/^\/events\/([^/]+)$/)) && method === "GET") {
      const ev = user.events.get(m[1]!);
      if (!ev) return { status: 404, body: { error: { code: "ErrorItemNotFound", message: "The specified object was not found in the store." } } };
      return { status: 200, body: { ...instanceJson({ id: ev.id, event: ev, type: "singleInstance", ...instanceBounds(ev), data: ev }), type: ev.recurrence ? "seriesMaster" : "singleInstance", recurrence: ev.recurrence ?? null } };
    }
    return { status: 400, body: { error: { code: "BadRequest", message: `The simulator does not implement ${method} ${rest}` } } };
  }

  private delta(user: SimUser, q: URLSearchParams, prefer: string[]): Res {
    for (const k of ["$select", "$expand", "$filter", "$orderby", "$search"]) if (q.has(k)) throw new ODataError("ErrorInvalidUrlQuery", `The query parameter '${k}' is not supported with calendarView delta.`);
    const pref = prefer.find((p) => /^odata\.maxpagesize=\d+$/i.test(p));
    const pageSize = pref ? Math.max(1, Number(pref.split("=")[1])) : 10;
    const zone = preferredZone(prefer);
    const gone = (): Res => ({ status: 410, body: { error: { code: "SyncStateNotFound", message: "The sync state generation is not found. Please restart the sync with an initial delta request." } } });
    const skip = q.get("$skiptoken");
    const dt = q.get("$deltatoken");
    let state: { token: ViewToken; items: Array<Record<string, unknown>>; pageSize: number };
    if (skip) {
      const s = this.skipTokens.get(skip);
      if (!s || s.token.userId !== user.id) return gone();
      this.skipTokens.delete(skip);
      state = s;
    } else {
      let prev: ViewToken | undefined;
      let from: Date, to: Date;
      if (dt) {
        prev = this.deltaTokens.get(dt);
        if (!prev || prev.userId !== user.id) return gone();
        ({ from, to } = prev);
      } else ({ from, to } = windowOf(q));
      const now = this.instances(user, from, to);
      const snapshot = new Map(now.map((i) => [i.id, version(i)]));
      const items: Array<Record<string, unknown>> = [];
      for (const i of now) if (!prev || prev.snapshot.get(i.id) !== snapshot.get(i.id)) items.push(instanceJson(i, zone));
      if (prev) {
        for (const id of prev.snapshot.keys()) if (!snapshot.has(id)) items.push({ "@odata.type": "#microsoft.graph.event", id, "@removed": { reason: "deleted" } });
        // Changes outside the window are reported as removals too (documented quirk).
        for (const ev of user.events.values()) if (ev.seq > prev.seq && !now.some((i) => i.event === ev) && !prev.snapshot.has(ev.id)) items.push({ "@odata.type": "#microsoft.graph.event", id: ev.id, "@removed": { reason: "deleted" } });
      }
      state = { token: { userId: user.id, from, to, seq: user.seq, snapshot }, items, pageSize };
    }
    const page = state.items.slice(0, state.pageSize);
    const rest = state.items.slice(state.pageSize);
    const base = `${this.host.origin}/v1.0/users/${user.id}/calendarView/delta`;
    const headers: Record<string, string> = pref ? { "Preference-Applied": `odata.maxpagesize=${state.pageSize}` } : {};
    const token = crypto.randomBytes(16).toString("base64url");
    if (rest.length) {
      this.skipTokens.set(token, { ...state, items: rest });
      return { status: 200, headers, body: { "@odata.nextLink": `${base}?$skiptoken=${token}`, value: page } };
    }
    this.deltaTokens.set(token, state.token);
    return { status: 200, headers, body: { "@odata.deltaLink": `${base}?$deltatoken=${token}`, value: page } };
  }

  expireDeltaTokens(userId: string) {
    for (const [k, v] of this.deltaTokens) if (v.userId === userId) this.deltaTokens.delete(k);
    for (const [k, v] of this.skipTokens) if (v.token.userId === userId) this.skipTokens.delete(k);
  }

  // ---- the calendar owner's actions (Outlook), used by tests -------------------------------

  add(user: SimUser, input: Partial<SimEventData> & Pick<SimEventData, "subject" | "start" | "end"> & { recurrence?: SimRecurrence }): SimEvent {
    const now = new Date().toISOString();
    const owner = { emailAddress: { name: user.displayName, address: user.mail } };
    const ev: SimEvent = {
      id: newId("AAMkADe"), iCalUId: `040000008200E00074C5B7101A82E008${crypto.randomBytes(16).toString("hex").toUpperCase()}`, changeKey: newChangeKey(),
      createdDateTime: now, lastModifiedDateTime: now, exceptions: new Map(), seq: 0,
      isAllDay: false, showAs: "busy", sensitivity: "normal", location: { displayName: "" }, organizer: owner, attendees: [],
      responseStatus: { response: "organizer", time: "0001-01-01T00:00:00Z" }, isCancelled: false, body: { contentType: "text", content: "" },
      ...input,
    };
    instanceBounds(ev); // validates the zone
    user.events.set(ev.id, ev);
    this.touch(user, ev, "created");
    return ev;
  }

  update(user: SimUser, id: string, changes: Partial<SimEventData> & { recurrence?: SimRecurrence }): SimEvent {
    const ev = this.get(user, id);
    Object.assign(ev, changes);
    ev.changeKey = newChangeKey();
    this.touch(user, ev, "updated");
    return ev;
  }

  /** Changes one occurrence (making it an exception) or cancels it (`deleted`). */
  changeOccurrence(user: SimUser, seriesId: string, originalStartUtc: string, change: { deleted: true } | { changes: Partial<SimEventData> }) {
    const ev = this.get(user, seriesId);
    ev.exceptions.set(new Date(originalStartUtc).toISOString(), "deleted" in change ? { deleted: true } : { changes: change.changes });
    this.touch(user, ev, "updated");
  }

  remove(user: SimUser, id: string) {
    const ev = this.get(user, id);
    user.events.delete(id);
    user.seq++;
    this.host.notifyEvent(user, ev.id, ev.changeKey, "deleted");
  }

  private get(user: SimUser, id: string): SimEvent {
    const ev = user.events.get(id);
    if (!ev) throw new Error(`no event ${id}`);
    return ev;
  }

  private touch(user: SimUser, ev: SimEvent, change: "created" | "updated") {
    user.seq++;
    ev.seq = user.seq;
    ev.lastModifiedDateTime = new Date().toISOString();
    this.host.notifyEvent(user, ev.id, ev.changeKey, change);
  }
}

/** `Prefer: outlook.timezone="..."` (user-list-calendarview, request headers); UTC without it. */
function preferredZone(prefer: string[]): string {
  const p = prefer.find((x) => /^outlook\.timezone=/i.test(x));
  return p ? p.slice(p.indexOf("=") + 1).replace(/^"|"$/g, "").trim() || "UTC" : "UTC";
}

function windowOf(q: URLSearchParams): { from: Date; to: Date } {
  const s = q.get("startDateTime");
  const e = q.get("endDateTime");
  if (!s || !e) throw new ODataError("ErrorInvalidParameter", "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.");
  // A time without a zone designator is UTC (event-delta: "in UTC").
  const utc = (x: string) => new Date(/(Z|[+-]\d{2}:\d{2})$/i.test(x) ? x : `${x}Z`);
  const from = utc(s);
  const to = utc(e);
  if (Number.isNaN(+from) || Number.isNaN(+to) || to <= from) throw new ODataError("ErrorInvalidParameter", "The time window is invalid.");
  return { from, to };
}
