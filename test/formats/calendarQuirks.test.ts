/**
 * What Graph may answer that main did not expect (issue 18, point 4): values of evolvable enums
 * added later, any time zone, events without a usable time. Carried or skipped with a reason,
 * never a crash of the whole run.
 */
import { describe, expect, it } from "vitest";
import ICAL from "ical.js";
import { toOccurrence } from "../../src/graph/calendar.js";
import { occurrenceToICalendar, parseOccurrence, type Occurrence } from "../../src/formats/icalendar.js";
import { wallTimeToUtc } from "../../src/formats/timeZones.js";
import { isConnectorError } from "../../src/errors.js";

const graphEvent = (over: Record<string, unknown> = {}) => ({
  id: "AAMkAD-1", type: "singleInstance", subject: "Review", isAllDay: false, showAs: "busy", sensitivity: "normal", isCancelled: false,
  start: { dateTime: "2026-07-01T09:00:00.0000000", timeZone: "UTC" }, end: { dateTime: "2026-07-01T10:00:00.0000000", timeZone: "UTC" },
  organizer: { emailAddress: { name: "Ann", address: "ann@contoso.test" } }, responseStatus: { response: "accepted" }, attendees: [], ...over,
});

describe("Graph time zones", () => {
  it.each([
    ["UTC", "2026-07-01T09:00:00.0000000", "2026-07-01T09:00:00.000Z"],
    ["tzone://Microsoft/Utc", "2026-07-01T09:00:00.0000000", "2026-07-01T09:00:00.000Z"],
    ["W. Europe Standard Time", "2026-07-01T09:00:00.0000000", "2026-07-01T07:00:00.000Z"], // CEST, UTC+2
    ["W. Europe Standard Time", "2026-01-15T09:00:00.0000000", "2026-01-15T08:00:00.000Z"], // CET, UTC+1
    ["Pacific Standard Time", "2026-03-08T02:30:00.0000000", "2026-03-08T10:30:00.000Z"], // in the spring-forward gap: moved forward
    ["Europe/Berlin", "2026-07-01T09:00:00.0000000", "2026-07-01T07:00:00.000Z"],
    ["India Standard Time", "2026-07-01T09:00:00.0000000", "2026-07-01T03:30:00.000Z"],
  ])("%s %s -> %s", (zone, wall, utc) => {
    // Break seen red: returning `${wall}Z` for every zone -> the W. Europe rows fail.
    expect(wallTimeToUtc(wall, zone)).toBe(utc);
  });
  it("refuses a zone nothing knows with a typed error", () => {
    for (const z of ["tzone://Microsoft/Custom", "Mars Standard Time", ""]) {
      let err: unknown;
      try { wallTimeToUtc("2026-07-01T09:00:00", z); } catch (e) { err = e; }
      expect(isConnectorError(err, "BAD_REQUEST"), z).toBe(true);
    }
  });
  it("reads a non-UTC event Graph answered although UTC was asked for", () => {
    const o = toOccurrence(graphEvent({ start: { dateTime: "2026-07-01T09:00:00.0000000", timeZone: "W. Europe Standard Time" }, end: { dateTime: "2026-07-01T10:00:00.0000000", timeZone: "W. Europe Standard Time" } }));
    expect(o).toMatchObject({ start: "2026-07-01T07:00:00.000Z", end: "2026-07-01T08:00:00.000Z" });
  });
  it("an event with no usable time or an unknown zone is CALENDAR_EVENT_UNUSABLE (one event, not the run)", () => {
    for (const bad of [{ start: { dateTime: "", timeZone: "UTC" } }, { start: undefined }, { end: { dateTime: "2026-07-01T10:00:00", timeZone: "tzone://Microsoft/Custom" } }, { end: { dateTime: "2026-07-01T08:00:00", timeZone: "UTC" } }]) {
      let err: unknown;
      try { toOccurrence(graphEvent(bad)); } catch (e) { err = e; }
      expect(isConnectorError(err, "CALENDAR_EVENT_UNUSABLE"), JSON.stringify(bad)).toBe(true);
    }
  });
});

describe("enum values Graph adds later", () => {
  it("an unknown attendee response, show-as, type and sensitivity are carried through the store item", () => {
    // Break seen red: PARTSTAT[a.response] without a fallback -> ical.js TypeError (main's crash).
    const o = toOccurrence(graphEvent({ showAs: "focusTime", attendees: [{ type: "observer", emailAddress: { address: "x@contoso.test" }, status: { response: "delegated" } }], responseStatus: { response: "forwarded" } }));
    const text = occurrenceToICalendar(o);
    expect(text).toContain("X-MICROSOFT-CDO-BUSYSTATUS;X-UMC-GRAPH=focusTime:BUSY");
    const back = parseOccurrence(text);
    expect(back).toMatchObject({ showAs: "focusTime", myResponse: "forwarded", attendees: [{ address: "x@contoso.test", response: "delegated", type: "observer" }] });
  });
  it("a sensitivity Graph adds later is redacted (fail closed) and carried", () => {
    const o = toOccurrence(graphEvent({ sensitivity: "secret", subject: "Hidden", location: { displayName: "Vault" } }));
    const text = occurrenceToICalendar(o);
    expect(text).not.toMatch(/Hidden|Vault/);
    expect(parseOccurrence(text).sensitivity).toBe("secret");
  });
  it("missing enums take the documented defaults", () => {
    const o = toOccurrence(graphEvent({ showAs: undefined, sensitivity: undefined, responseStatus: undefined }));
    expect(o).toMatchObject({ showAs: "unknown", sensitivity: "normal", myResponse: undefined });
  });
});

describe("iCalendar details", () => {
  const base: Occurrence = { id: "occ", start: "2026-07-01T09:00:00.000Z", end: "2026-07-01T10:00:00.000Z", isAllDay: false, showAs: "busy", sensitivity: "normal", attendees: [{ address: "room@contoso.test", name: "Room 4", response: "accepted", type: "resource" }], isCancelled: false };
  it("writes resources as CUTYPE=RESOURCE and reads main's ROLE=NON-PARTICIPANT items as resources too", () => {
    const text = occurrenceToICalendar(base);
    const attendee = new ICAL.Component(ICAL.parse(text) as unknown as unknown[]).getFirstSubcomponent("vevent")!.getFirstProperty("attendee")!;
    expect(attendee.getParameter("cutype")).toBe("RESOURCE");
    expect(attendee.getParameter("role")).not.toBe("NON-PARTICIPANT");
    const legacy = text.replace(/CUTYPE=RESOURCE;/, "").replace("ROLE=REQ-PARTICIPANT", "ROLE=NON-PARTICIPANT");
    expect(parseOccurrence(legacy).attendees[0]!.type).toBe("resource");
  });
  it("DTSTAMP is lastModified, else now, never 1970", () => {
    const stamp = (o: Occurrence) => new ICAL.Component(ICAL.parse(occurrenceToICalendar(o)) as unknown as unknown[]).getFirstSubcomponent("vevent")!.getFirstPropertyValue("dtstamp") as ICAL.Time;
    expect(stamp({ ...base, lastModified: "2026-06-30T12:00:00Z" }).toJSDate().toISOString()).toBe("2026-06-30T12:00:00.000Z");
    // Break seen red: `new Date(o.lastModified ?? 0)` (main) -> 1970.
    const before = Date.now() - 1000;
    expect(stamp(base).toJSDate().getTime()).toBeGreaterThanOrEqual(before);
    expect(stamp({ ...base, lastModified: "garbage" }).toJSDate().getTime()).toBeGreaterThanOrEqual(before);
  });
});
