/**
 * Exchange calendar occurrences -> iCalendar (RFC 5545) items for the voice store's calendar
 * folder, built and parsed with ical.js.
 *
 * Times: calendarView returns start/end in UTC unless `Prefer: outlook.timezone` is sent
 * (https://learn.microsoft.com/en-us/graph/api/user-list-calendarview), so timed occurrences
 * are written as UTC DATE-TIMEs (RFC 5545 section 3.3.5 form #2) and need no VTIMEZONE;
 * all-day events are written as VALUE=DATE (section 3.6.1) in the event's own calendar days.
 * Show-as maps to TRANSP and Outlook's X-MICROSOFT-CDO-BUSYSTATUS; private events are
 * redacted to their time and "busy" (DESIGN.md section 1).
 */
import ICAL from "ical.js";
import { ConnectorError } from "../errors.js";

/**
 * Graph's enums are evolvable (https://learn.microsoft.com/en-us/graph/best-practices-concept#handling-future-members-in-evolvable-enumerations):
 * a value added later is carried as it came (`(string & {})`), never crashed on. Each writer
 * below has a safe reading for a value it does not know (busy, needs-action, redacted).
 */
type Open<T extends string> = T | (string & {});
export type KnownShowAs = "free" | "tentative" | "busy" | "oof" | "workingElsewhere" | "unknown";
export type ShowAs = Open<KnownShowAs>;
export type Sensitivity = Open<"normal" | "personal" | "private" | "confidential">;
export type ResponseKind = Open<"none" | "organizer" | "tentativelyAccepted" | "accepted" | "declined" | "notResponded">;
export type AttendeeType = Open<"required" | "optional" | "resource">;

export interface Occurrence {
  /** Graph event id of this occurrence (or single instance). */
  id: string;
  iCalUId?: string;
  subject?: string;
  /** UTC ISO instants for timed events; for all-day events the first day and the day after the last (YYYY-MM-DD). */
  start: string;
  end: string;
  isAllDay: boolean;
  showAs: ShowAs;
  sensitivity: Sensitivity;
  location?: string;
  organizer?: { name?: string; address: string };
  attendees: Array<{ name?: string; address: string; response: ResponseKind; type?: AttendeeType }>;
  /** The mailbox owner's own response. */
  myResponse?: ResponseKind;
  isCancelled: boolean;
  lastModified?: string;
}

const PRODID = "-//umconnect//calendar mirror//EN";
// "unknown" (and any value Graph adds later) is busy on the store, as it is for the UC location
// (src/sync/ucLocation.ts reads an unknown value as "unknown").
const BUSY_STATUS: Record<string, string> = { free: "FREE", tentative: "TENTATIVE", busy: "BUSY", oof: "OOF", workingElsewhere: "WORKINGELSEWHERE", unknown: "BUSY" };
const PARTSTAT: Record<string, string> = { none: "NEEDS-ACTION", notResponded: "NEEDS-ACTION", organizer: "ACCEPTED", accepted: "ACCEPTED", tentativelyAccepted: "TENTATIVE", declined: "DECLINED" };
const FROM_PARTSTAT: Record<string, ResponseKind> = { "NEEDS-ACTION": "none", ACCEPTED: "accepted", TENTATIVE: "tentativelyAccepted", DECLINED: "declined" };
/** Our own parameter carrying the Graph value when the standard one cannot say it exactly (RFC 5545 section 3.2: x-param). */
const X_GRAPH = "x-umc-graph";
/**
 * A Graph enum value as an iCalendar code (the table's, or `fallback` for a value it does not
 * know) plus the exact value in X_GRAPH whenever reading the code back would not give it
 * (a later value, "unknown" written as BUSY, "organizer" written as ACCEPTED).
 */
function setEnum(p: ICAL.Property, table: Record<string, string>, reverse: (code: string) => string | undefined, value: string, fallback: string, param?: string): void {
  const code = Object.hasOwn(table, value) ? table[value]! : fallback;
  if (param) p.setParameter(param, code); else p.setValue(code);
  if (reverse(code) !== value) p.setParameter(X_GRAPH, value);
}
const showAsOf = (code: string) => Object.entries(BUSY_STATUS).find(([k, v]) => v === code && k !== "unknown")?.[0];
const responseOf = (code: string) => FROM_PARTSTAT[code.toUpperCase()];

/** Only "normal" and "personal" are shown: a sensitivity Graph adds later is redacted (fail closed). */
export const isPrivate = (o: Pick<Occurrence, "sensitivity">) => o.sensitivity !== "normal" && o.sensitivity !== "personal";

function icalTime(value: string, allDay: boolean): ICAL.Time {
  if (allDay) {
    const m = value.match(/^(\d{4})-(\d{2})-(\d{2})/);
    if (!m) throw new ConnectorError("BAD_REQUEST", "all-day date is not YYYY-MM-DD");
    return ICAL.Time.fromData({ year: Number(m[1]), month: Number(m[2]), day: Number(m[3]), isDate: true });
  }
  const d = new Date(value.endsWith("Z") || /[+-]\d\d:\d\d$/.test(value) ? value : value + "Z");
  if (Number.isNaN(d.getTime())) throw new ConnectorError("BAD_REQUEST", "event time is not an ISO instant");
  return ICAL.Time.fromJSDate(d, true);
}

/** One VCALENDAR with one VEVENT for the occurrence; private ones redacted. */
export function occurrenceToICalendar(o: Occurrence, options: { redactPrivate?: boolean; dtstamp?: Date } = {}): string {
  const redact = (options.redactPrivate ?? true) && isPrivate(o);
  const cal = new ICAL.Component(["vcalendar", [], []]);
  cal.addPropertyWithValue("prodid", PRODID);
  cal.addPropertyWithValue("version", "2.0");
  const ev = new ICAL.Component("vevent");
  // UID per occurrence: RECURRENCE-ID is not used because each occurrence is its own item.
  ev.addPropertyWithValue("uid", `${o.id}@umconnect`);
  ev.addPropertyWithValue("dtstamp", ICAL.Time.fromJSDate(dtstamp(o, options.dtstamp), true));
  ev.addPropertyWithValue("dtstart", icalTime(o.start, o.isAllDay));
  ev.addPropertyWithValue("dtend", icalTime(o.end, o.isAllDay));
  ev.addPropertyWithValue("summary", redact ? "Busy" : (o.subject ?? ""));
  ev.addPropertyWithValue("transp", o.showAs === "free" ? "TRANSPARENT" : "OPAQUE");
  setEnum(ev.addPropertyWithValue("x-microsoft-cdo-busystatus", "BUSY"), BUSY_STATUS, showAsOf, o.showAs, "BUSY");
  if (o.isCancelled) ev.addPropertyWithValue("status", "CANCELLED");
  else if (o.showAs === "tentative") ev.addPropertyWithValue("status", "TENTATIVE");
  else ev.addPropertyWithValue("status", "CONFIRMED");
  // A sensitivity Graph adds later is kept (the value, not the content it hides).
  if (!["normal", "personal", "private", "confidential"].includes(o.sensitivity)) ev.addPropertyWithValue("x-umc-sensitivity", o.sensitivity);
  if (redact) {
    ev.addPropertyWithValue("class", o.sensitivity === "confidential" ? "CONFIDENTIAL" : "PRIVATE");
  } else {
    // Only normal and personal are shown; "personal" has no CLASS of its own in RFC 5545
    // (PUBLIC / PRIVATE / CONFIDENTIAL), so it is kept in an x-property.
    if (o.sensitivity === "personal") ev.addPropertyWithValue("x-umc-sensitivity", "PERSONAL");
    if (o.location) ev.addPropertyWithValue("location", o.location);
    if (o.organizer) {
      const p = ev.addPropertyWithValue("organizer", `mailto:${o.organizer.address}`);
      if (o.organizer.name) p.setParameter("cn", o.organizer.name);
    }
    for (const a of o.attendees) {
      const p = ev.addPropertyWithValue("attendee", `mailto:${a.address}`);
      if (a.name) p.setParameter("cn", a.name);
      // A response Graph adds later: NEEDS-ACTION (RFC 5545 section 3.2.12 default) plus the
      // value itself in our x-param, so reading back gives what Graph said.
      setEnum(p, PARTSTAT, responseOf, a.response, "NEEDS-ACTION", "partstat");
      // Rooms and equipment are CUTYPE=RESOURCE (RFC 5545 section 3.2.3), as Outlook exports them.
      if (a.type === "resource") p.setParameter("cutype", "RESOURCE");
      p.setParameter("role", a.type === "optional" ? "OPT-PARTICIPANT" : "REQ-PARTICIPANT");
      if (a.type !== undefined && !["required", "optional", "resource"].includes(a.type)) p.setParameter("x-umc-type", a.type);
    }
    if (o.myResponse) setEnum(ev.addPropertyWithValue("x-umc-my-response", "NEEDS-ACTION"), PARTSTAT, responseOf, o.myResponse, "NEEDS-ACTION");
  }
  cal.addSubcomponent(ev);
  return cal.toString().replace(/\r?\n/g, "\r\n") + "\r\n";
}

/**
 * DTSTAMP (RFC 5545 section 3.8.7.2): when the item was made; Graph's lastModifiedDateTime
 * when it is a real date, else now. Never 1970.
 */
function dtstamp(o: Occurrence, given: Date | undefined): Date {
  if (given) return given;
  const t = o.lastModified ? Date.parse(o.lastModified) : NaN;
  return Number.isNaN(t) || t <= 0 ? new Date() : new Date(t);
}

/** Reads back what occurrenceToICalendar wrote (and tolerable variants). Typed errors only. */
export function parseOccurrence(text: string): Occurrence {
  try {
    return readOccurrence(text);
  } catch (e) {
    // ical.js throws plain errors (and TypeErrors on odd input): one typed error for all.
    if (e instanceof ConnectorError) throw e;
    throw new ConnectorError("BAD_REQUEST", "not valid iCalendar", { cause: e });
  }
}

function readOccurrence(text: string): Occurrence {
  if (text.length > 512 * 1024) throw new ConnectorError("PAYLOAD_TOO_LARGE", "iCalendar item too large");
  let cal: ICAL.Component;
  try {
    cal = new ICAL.Component(ICAL.parse(text) as unknown as unknown[]);
  } catch (e) {
    throw new ConnectorError("BAD_REQUEST", "not valid iCalendar", { cause: e });
  }
  const ev = cal.getFirstSubcomponent("vevent");
  if (!ev) throw new ConnectorError("BAD_REQUEST", "iCalendar item has no VEVENT");
  const str = (name: string) => { const v = ev.getFirstPropertyValue(name); return v === null || v === undefined ? undefined : String(v); };
  const time = (name: string) => {
    const v = ev.getFirstPropertyValue(name);
    if (!(v instanceof ICAL.Time)) throw new ConnectorError("BAD_REQUEST", `VEVENT has no ${name.toUpperCase()}`);
    return v;
  };
  const start = time("dtstart");
  const end = time("dtend");
  const isAllDay = start.isDate;
  const fmt = (t: ICAL.Time) => (isAllDay ? t.toString().slice(0, 10) : t.toJSDate().toISOString());
  const uid = str("uid") ?? "";
  const busyProp = ev.getFirstProperty("x-microsoft-cdo-busystatus");
  const busy = busyProp ? String(busyProp.getFirstValue()) : undefined;
  const carried = (p: ICAL.Property | null | undefined) => { const v = p?.getParameter(X_GRAPH); return v === undefined || v === null ? undefined : String(v); };
  const showAs: ShowAs = carried(busyProp) ?? (busy ? showAsOf(busy.toUpperCase()) : undefined) ?? (str("transp") === "TRANSPARENT" ? "free" : "busy");
  const cls = str("class");
  const mail = (v: unknown) => String(v).replace(/^mailto:/i, "");
  const organizerProp = ev.getFirstProperty("organizer");
  const mineProp = ev.getFirstProperty("x-umc-my-response");
  const mine = mineProp ? carried(mineProp) ?? responseOf(String(mineProp.getFirstValue())) ?? "none" : undefined;
  return {
    id: uid.replace(/@umconnect$/, ""),
    subject: str("summary"),
    start: fmt(start),
    end: fmt(end),
    isAllDay,
    showAs,
    sensitivity: sensitivityOf(cls, str("x-umc-sensitivity")),
    location: str("location"),
    organizer: organizerProp ? { address: mail(organizerProp.getFirstValue()), ...(organizerProp.getParameter("cn") ? { name: String(organizerProp.getParameter("cn")) } : {}) } : undefined,
    attendees: ev.getAllProperties("attendee").map((p) => ({
      address: mail(p.getFirstValue()),
      ...(p.getParameter("cn") ? { name: String(p.getParameter("cn")) } : {}),
      response: carried(p) ?? responseOf(String(p.getParameter("partstat") ?? "NEEDS-ACTION")) ?? "none",
      type: attendeeType(p),
    })),
    myResponse: mine,
    isCancelled: str("status") === "CANCELLED",
  };
}

/** CUTYPE=RESOURCE / ROOM is a resource; ROLE=NON-PARTICIPANT is how items written before CUTYPE marked one. */
function attendeeType(p: ICAL.Property): AttendeeType {
  const x = p.getParameter("x-umc-type");
  if (x !== undefined && x !== null) return String(x);
  const cutype = String(p.getParameter("cutype") ?? "").toUpperCase();
  const role = String(p.getParameter("role") ?? "").toUpperCase();
  if (cutype === "RESOURCE" || cutype === "ROOM" || role === "NON-PARTICIPANT") return "resource";
  return role === "OPT-PARTICIPANT" ? "optional" : "required";
}

function sensitivityOf(cls: string | undefined, x: string | undefined): Sensitivity {
  if (x && x !== "PERSONAL") return x;
  if (cls === "PRIVATE") return "private";
  if (cls === "CONFIDENTIAL") return "confidential";
  return x === "PERSONAL" ? "personal" : "normal";
}
