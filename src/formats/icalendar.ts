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

export type ShowAs = "free" | "tentative" | "busy" | "oof" | "workingElsewhere" | "unknown";
export type Sensitivity = "normal" | "personal" | "private" | "confidential";
export type ResponseKind = "none" | "organizer" | "tentativelyAccepted" | "accepted" | "declined" | "notResponded";

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
  attendees: Array<{ name?: string; address: string; response: ResponseKind; type?: "required" | "optional" | "resource" }>;
  /** The mailbox owner's own response. */
  myResponse?: ResponseKind;
  isCancelled: boolean;
  lastModified?: string;
}

const PRODID = "-//umconnect//calendar mirror//EN";
const BUSY_STATUS: Record<ShowAs, string> = { free: "FREE", tentative: "TENTATIVE", busy: "BUSY", oof: "OOF", workingElsewhere: "WORKINGELSEWHERE", unknown: "BUSY" };
const PARTSTAT: Record<ResponseKind, string> = { none: "NEEDS-ACTION", notResponded: "NEEDS-ACTION", organizer: "ACCEPTED", accepted: "ACCEPTED", tentativelyAccepted: "TENTATIVE", declined: "DECLINED" };
const FROM_PARTSTAT: Record<string, ResponseKind> = { "NEEDS-ACTION": "none", ACCEPTED: "accepted", TENTATIVE: "tentativelyAccepted", DECLINED: "declined" };

export const isPrivate = (o: Pick<Occurrence, "sensitivity">) => o.sensitivity === "private" || o.sensitivity === "confidential";

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
  ev.addPropertyWithValue("dtstamp", ICAL.Time.fromJSDate(options.dtstamp ?? new Date(o.lastModified ?? 0), true));
  ev.addPropertyWithValue("dtstart", icalTime(o.start, o.isAllDay));
  ev.addPropertyWithValue("dtend", icalTime(o.end, o.isAllDay));
  ev.addPropertyWithValue("summary", redact ? "Busy" : (o.subject ?? ""));
  ev.addPropertyWithValue("transp", o.showAs === "free" ? "TRANSPARENT" : "OPAQUE");
  ev.addPropertyWithValue("x-microsoft-cdo-busystatus", BUSY_STATUS[o.showAs]);
  if (o.isCancelled) ev.addPropertyWithValue("status", "CANCELLED");
  else if (o.showAs === "tentative") ev.addPropertyWithValue("status", "TENTATIVE");
  else ev.addPropertyWithValue("status", "CONFIRMED");
  if (redact) {
    ev.addPropertyWithValue("class", "PRIVATE");
  } else {
    // Only private and confidential are redacted; "personal" has no CLASS of its own in RFC
    // 5545 (PUBLIC / PRIVATE / CONFIDENTIAL), so it is kept in an x-property.
    if (o.sensitivity === "personal") ev.addPropertyWithValue("x-umc-sensitivity", "PERSONAL");
    if (o.location) ev.addPropertyWithValue("location", o.location);
    if (o.organizer) {
      const p = ev.addPropertyWithValue("organizer", `mailto:${o.organizer.address}`);
      if (o.organizer.name) p.setParameter("cn", o.organizer.name);
    }
    for (const a of o.attendees) {
      const p = ev.addPropertyWithValue("attendee", `mailto:${a.address}`);
      if (a.name) p.setParameter("cn", a.name);
      p.setParameter("partstat", PARTSTAT[a.response]);
      p.setParameter("role", a.type === "optional" ? "OPT-PARTICIPANT" : a.type === "resource" ? "NON-PARTICIPANT" : "REQ-PARTICIPANT");
    }
    if (o.myResponse) ev.addPropertyWithValue("x-umc-my-response", PARTSTAT[o.myResponse]);
  }
  cal.addSubcomponent(ev);
  return cal.toString().replace(/\r?\n/g, "\r\n") + "\r\n";
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
  const busy = str("x-microsoft-cdo-busystatus");
  const showAs = (Object.entries(BUSY_STATUS).find(([, v]) => v === busy)?.[0] as ShowAs | undefined) ?? (str("transp") === "TRANSPARENT" ? "free" : "busy");
  const cls = str("class");
  const mail = (v: unknown) => String(v).replace(/^mailto:/i, "");
  const organizerProp = ev.getFirstProperty("organizer");
  const mine = str("x-umc-my-response");
  return {
    id: uid.replace(/@umconnect$/, ""),
    subject: str("summary"),
    start: fmt(start),
    end: fmt(end),
    isAllDay,
    showAs,
    sensitivity: cls === "PRIVATE" ? "private" : cls === "CONFIDENTIAL" ? "confidential" : str("x-umc-sensitivity") === "PERSONAL" ? "personal" : "normal",
    location: str("location"),
    organizer: organizerProp ? { address: mail(organizerProp.getFirstValue()), ...(organizerProp.getParameter("cn") ? { name: String(organizerProp.getParameter("cn")) } : {}) } : undefined,
    attendees: ev.getAllProperties("attendee").map((p) => ({
      address: mail(p.getFirstValue()),
      ...(p.getParameter("cn") ? { name: String(p.getParameter("cn")) } : {}),
      response: FROM_PARTSTAT[String(p.getParameter("partstat") ?? "NEEDS-ACTION")] ?? "none",
      type: p.getParameter("role") === "OPT-PARTICIPANT" ? "optional" as const : p.getParameter("role") === "NON-PARTICIPANT" ? "resource" as const : "required" as const,
    })),
    myResponse: mine ? FROM_PARTSTAT[mine] : undefined,
    isCancelled: str("status") === "CANCELLED",
  };
}
