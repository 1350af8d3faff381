/**
 * Graph -> store format -> Graph is the identity on the mapped fields (property tests):
 * contacts through the Graph mapping and vCard 4.0, calendar occurrences through the Graph
 * event mapping and iCalendar.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromGraphContact, toGraphContact } from "../../src/graph/contacts.js";
import { toOccurrence } from "../../src/graph/calendar.js";
import { parseVCard, writeVCard } from "../../src/formats/vcard.js";
import { occurrenceToICalendar, parseOccurrence } from "../../src/formats/icalendar.js";
import { utcToZoned } from "../graph-sim/timezones.js";

const line = fc.string({ minLength: 1, maxLength: 60 }).filter((s) => s.trim() === s && !/[\u0000-\u001f\u007f]/.test(s));
const phone = fc.stringMatching(/^\+?[0-9][0-9 ]{2,14}[0-9]$/);
const address = fc.record({ street: line, city: line, state: line, postalCode: line, countryOrRegion: line }, { requiredKeys: [] });

describe("Graph contact -> vCard -> Graph contact", () => {
  const graphContact = fc.record({
    displayName: line, givenName: line, surname: line, middleName: line, title: line, generation: line,
    emailAddresses: fc.array(fc.emailAddress().map((address) => ({ address, name: address })), { maxLength: 3 }),
    businessPhones: fc.array(phone, { maxLength: 3 }), homePhones: fc.array(phone, { maxLength: 2 }), mobilePhone: phone,
    companyName: line, department: line, jobTitle: line, businessAddress: address, homeAddress: address, otherAddress: address,
    birthday: fc.date({ min: new Date("1900-01-01"), max: new Date("2030-12-31"), noInvalidDate: true }).map((d) => `${d.toISOString().slice(0, 10)}T00:00:00Z`),
    personalNotes: line,
  }, { requiredKeys: ["emailAddresses", "businessPhones", "homePhones"] });

  it("keeps every mapped property (property, 300 runs)", () => {
    fc.assert(fc.property(graphContact, (g) => {
      const fields = fromGraphContact(g);
      const back = toGraphContact(parseVCard(writeVCard(fields))).props;
      const once = toGraphContact(fields).props;
      expect(back).toEqual(once);
      // And what Graph held is what comes back, for every property it had.
      for (const [k, v] of Object.entries(g)) {
        if (Array.isArray(v) && !v.length) continue;
        if (v && typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length) continue;
        expect(back[k]).toEqual(v);
      }
    }), { numRuns: 300 });
  });

  it("keeps a fourth email and unknown vCard properties in the extras, not lost", () => {
    const card = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Many Mails\r\nEMAIL:a@x.test\r\nEMAIL:b@x.test\r\nEMAIL:c@x.test\r\nEMAIL:d@x.test\r\nX-AVAYA-PIN:42\r\nEND:VCARD\r\n";
    const { props, extra } = toGraphContact(parseVCard(card));
    expect((props.emailAddresses as unknown[]).length).toBe(3);
    expect(extra).toEqual(["X-AVAYA-PIN:42", "EMAIL:d@x.test"]);
  });
});

describe("Graph event -> iCalendar -> occurrence", () => {
  const minute = fc.integer({ min: Date.UTC(2020, 0, 1) / 60000, max: Date.UTC(2032, 0, 1) / 60000 });
  // ical.js unescapes backslashes in parameter values (CN), so names with one are left out.
  const who = fc.record({ name: line.filter((n) => !n.includes("\\")), address: fc.emailAddress() });
  // Every documented value and values Graph may add later (evolvable enums): carried, never crashed on.
  const later = fc.stringMatching(/^[a-z][A-Za-z]{2,20}$/);
  const event = fc.record({
    id: fc.stringMatching(/^[A-Za-z0-9_=-]{8,40}$/), subject: line, start: minute, minutes: fc.integer({ min: 1, max: 24 * 60 }), isAllDay: fc.boolean(),
    showAs: fc.oneof(fc.constantFrom("free", "tentative", "busy", "oof", "workingElsewhere", "unknown"), later), sensitivity: fc.constantFrom("normal", "personal"),
    location: line, organizer: who,
    attendees: fc.array(fc.record({ who, response: fc.oneof(fc.constantFrom("accepted", "declined", "tentativelyAccepted", "none", "organizer", "notResponded"), later), type: fc.oneof(fc.constantFrom("required", "optional", "resource"), later) }), { maxLength: 4 }),
    myResponse: fc.oneof(fc.constantFrom("organizer", "accepted", "tentativelyAccepted", "notResponded", "none", "declined"), later),
    zone: fc.constantFrom("UTC", "tzone://Microsoft/Utc", "W. Europe Standard Time", "Pacific Standard Time", "AUS Eastern Standard Time", "India Standard Time", "Europe/Paris", "America/Sao_Paulo"),
  });

  it("keeps every field, in any zone Graph answers with (property, 300 runs)", () => {
    fc.assert(fc.property(event, (e) => {
      const start = new Date(e.start * 60000);
      const end = new Date(+start + e.minutes * 60000);
      const day = (d: Date, plus = 0) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + plus)).toISOString().slice(0, 10);
      // The wall time in the zone, computed by the simulator's independent converter (Intl, UTC -> zone).
      const when = (d: Date, plus = 0) => ({ dateTime: e.isAllDay ? `${day(d, plus)}T00:00:00.0000000` : utcToZoned(d, e.zone), timeZone: e.zone });
      const graph = {
        id: e.id, type: "singleInstance", subject: e.subject, isAllDay: e.isAllDay, showAs: e.showAs, sensitivity: e.sensitivity, isCancelled: false,
        start: when(start), end: e.isAllDay ? when(start, 1) : when(end), location: { displayName: e.location },
        organizer: { emailAddress: e.organizer }, responseStatus: { response: e.myResponse },
        attendees: e.attendees.map((a) => ({ type: a.type, emailAddress: a.who, status: { response: a.response } })),
      };
      const o = toOccurrence(graph);
      // The instant read is the one the wall time names (both directions agree; a DST fold names two).
      if (!e.isAllDay) expect(utcToZoned(new Date(o.start), e.zone)).toBe(graph.start.dateTime);
      const back = parseOccurrence(occurrenceToICalendar(o));
      const { lastModified: _a, iCalUId: _b, ...want } = o;
      const { lastModified: _c, iCalUId: _d, ...got } = back;
      expect(got).toEqual(want);
    }), { numRuns: 300 });
  });
});
