import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { occurrenceToICalendar, parseOccurrence, type Occurrence } from "../../src/formats/icalendar.js";
import { isConnectorError } from "../../src/errors.js";

const base: Occurrence = {
  id: "AAMkAD-occ-1", subject: "Budget review", start: "2026-11-25T09:00:00.000Z", end: "2026-11-25T10:30:00.000Z", isAllDay: false,
  showAs: "busy", sensitivity: "normal", location: "Room 4.12", organizer: { name: "Ann Lee", address: "ann@contoso.test" },
  attendees: [{ name: "Bob", address: "bob@contoso.test", response: "tentativelyAccepted", type: "required" }, { address: "room@contoso.test", response: "accepted", type: "resource" }],
  myResponse: "accepted", isCancelled: false,
};

describe("iCalendar mirror items", () => {
  it("writes a UTC timed occurrence that reads back identically", () => {
    const text = occurrenceToICalendar(base, { dtstamp: new Date("2026-11-24T00:00:00Z") });
    expect(text).toContain("DTSTART:20261125T090000Z");
    expect(text).toContain("X-MICROSOFT-CDO-BUSYSTATUS:BUSY");
    expect(text.replace(/\r\n[ \t]/g, "")).toMatch(/ATTENDEE;CN=Bob;PARTSTAT=TENTATIVE;ROLE=REQ-PARTICIPANT:mailto:bob@contoso.test/);
    expect(parseOccurrence(text)).toEqual({ ...base, iCalUId: undefined, lastModified: undefined });
  });
  it("writes all-day events as dates", () => {
    const text = occurrenceToICalendar({ ...base, isAllDay: true, start: "2026-12-24", end: "2026-12-27", showAs: "oof" });
    expect(text).toContain("DTSTART;VALUE=DATE:20261224");
    expect(text).toContain("DTEND;VALUE=DATE:20261227");
    expect(parseOccurrence(text)).toMatchObject({ isAllDay: true, start: "2026-12-24", end: "2026-12-27", showAs: "oof" });
  });
  it("redacts private events to time and busy", () => {
    const text = occurrenceToICalendar({ ...base, sensitivity: "private", subject: "Doctor", location: "Clinic" });
    expect(text).not.toMatch(/Doctor|Clinic|ann@|bob@/);
    expect(parseOccurrence(text)).toMatchObject({ subject: "Busy", sensitivity: "private", attendees: [], start: base.start, end: base.end });
  });
  it("marks cancellations and free time", () => {
    expect(occurrenceToICalendar({ ...base, isCancelled: true })).toContain("STATUS:CANCELLED");
    expect(occurrenceToICalendar({ ...base, showAs: "free" })).toContain("TRANSP:TRANSPARENT");
  });
  it("refuses malformed iCalendar with a typed error", () => {
    for (const bad of ["", "BEGIN:VCALENDAR\r\nEND:VCALENDAR", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR", "garbage"]) {
      let err: unknown;
      try { parseOccurrence(bad); } catch (e) { err = e; }
      expect(isConnectorError(err), bad).toBe(true);
    }
  });
  it("round-trips mapped fields (property)", () => {
    const text = fc.string({ minLength: 1, maxLength: 60 }).filter((s) => s.trim() === s && !/[\u0000-\u001f\u007f]/.test(s));
    const instant = fc.integer({ min: Date.UTC(2020, 0, 1) / 60000, max: Date.UTC(2030, 0, 1) / 60000 }).map((m) => new Date(m * 60000).toISOString());
    fc.assert(fc.property(text, instant, fc.integer({ min: 1, max: 600 }), fc.constantFrom("free", "tentative", "busy", "oof"), fc.option(text, { nil: undefined }), (subject, start, minutes, showAs, location) => {
      const o: Occurrence = { ...base, subject, start, end: new Date(Date.parse(start) + minutes * 60000).toISOString(), showAs: showAs as Occurrence["showAs"], location, attendees: [] };
      expect(parseOccurrence(occurrenceToICalendar(o))).toEqual({ ...o, iCalUId: undefined, lastModified: undefined });
    }), { numRuns: 200 });
  });
});
