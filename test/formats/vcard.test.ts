import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { parseVCard, writeVCard, type ContactFields } from "../../src/formats/vcard.js";
import { isConnectorError } from "../../src/errors.js";
import { fromGraphContact, toGraphContact } from "../../src/formats/contactMapping.js";

const v3 = [
  "BEGIN:VCARD", "VERSION:3.0", "N:Gump;Forrest;;Mr.;", "FN:Forrest Gump", "ORG:Bubba Gump Shrimp Co.;Boats",
  "TITLE:Shrimp Man", "TEL;TYPE=WORK,VOICE:(111) 555-1212", "TEL;HOME;VOICE:(404) 555-1212", "TEL;TYPE=CELL:+1 404 555 0000",
  "ADR;TYPE=WORK:;;100 Waters Edge;Baytown;LA;30314;United States of America",
  "EMAIL;TYPE=PREF,INTERNET:forrestgump@example.com", "BDAY:1944-06-06", "NOTE:Life is like a box\\nof chocolates\\, really",
  "X-SKYPE:forrest.gump", "PHOTO;VALUE=uri:http://www.example.com/dir_photos/my_photo.gif", "END:VCARD",
].join("\r\n");

describe("vCard", () => {
  it("reads vCard 3.0 with bare TYPE params and keeps unmapped properties", () => {
    const c = parseVCard(v3);
    expect(c).toMatchObject({
      displayName: "Forrest Gump", surname: "Gump", givenName: "Forrest", title: "Mr.", companyName: "Bubba Gump Shrimp Co.", department: "Boats",
      jobTitle: "Shrimp Man", businessPhones: ["(111) 555-1212"], homePhones: ["(404) 555-1212"], mobilePhone: "+1 404 555 0000",
      businessAddress: { street: "100 Waters Edge", city: "Baytown", state: "LA", postalCode: "30314", countryOrRegion: "United States of America" },
      emailAddresses: [{ address: "forrestgump@example.com" }], birthday: "1944-06-06", personalNotes: "Life is like a box\nof chocolates, really",
    });
    expect(c.extra).toEqual(["X-SKYPE:forrest.gump", "PHOTO;VALUE=uri:http://www.example.com/dir_photos/my_photo.gif"]);
    expect(parseVCard(writeVCard(c))).toEqual(c);
  });

  it("reads vCard 4.0 with folded lines and tel: URIs", () => {
    const c = parseVCard("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Jane\r\n  Doe\r\nTEL;VALUE=uri;TYPE=\"voice,home\":tel:+1-555-555-5555\r\nEND:VCARD\r\n");
    expect(c.displayName).toBe("Jane Doe");
    expect(c.homePhones).toEqual(["+1-555-555-5555"]);
  });

  it("keeps fax and pager numbers on the store side: never an Exchange business or home phone, back on the card after a round trip", () => {
    const card = ["BEGIN:VCARD", "VERSION:3.0", "FN:Fay Xu", "N:Xu;Fay;;;", "TEL;TYPE=WORK,VOICE:+49 30 1111", "TEL;TYPE=WORK,FAX:+49 30 2222",
      "TEL;TYPE=HOME,FAX:+49 30 3333", "TEL;TYPE=PAGER:+49 30 4444", "END:VCARD"].join("\r\n");
    const f = parseVCard(card);
    expect(f.businessPhones).toEqual(["+49 30 1111"]);
    expect(f.homePhones).toEqual([]);
    const g = toGraphContact(f);
    expect(g.props.businessPhones).toEqual(["+49 30 1111"]);
    expect(g.props.homePhones ?? []).toEqual([]);
    // Exchange keeps the extras in its extended property; the card written back has every number with its type.
    const back = writeVCard({ ...fromGraphContact(g.props), extra: g.extra, shadows: g.shadows });
    const again = parseVCard(back);
    expect(again.businessPhones).toEqual(["+49 30 1111"]);
    expect(again.extra.filter((l) => /^TEL/i.test(l)).map((l) => l.replace(/^[^:]*:/, "")).sort()).toEqual(["+49 30 2222", "+49 30 3333", "+49 30 4444"]);
    expect(back).toMatch(/TEL;TYPE=[^:]*fax[^:]*:\+49 30 2222/i);
    expect(back).toMatch(/TEL;TYPE=[^:]*pager[^:]*:\+49 30 4444/i);
  });

  it("refuses what is not a vCard with a typed error", () => {
    for (const bad of ["", "hello", "BEGIN:VCARD\r\nVERSION:5.0\r\nEND:VCARD", "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x", "BEGIN:VCARD\r\nVERSION:4.0\r\nno colon\r\nEND:VCARD", "x".repeat(300_000)]) {
      let err: unknown;
      try { parseVCard(bad); } catch (e) { err = e; }
      expect(isConnectorError(err)).toBe(true);
    }
  });

  const text = fc.string({ unit: fc.oneof(fc.constantFrom(";", ",", "\\", ":", "\n", "\"", " ", "é", "😀"), fc.string({ minLength: 1, maxLength: 1 })), minLength: 1, maxLength: 90 })
    .filter((s) => !/[\r\u0000-\u0009\u000b-\u001f]/.test(s) && s.trim() === s && !s.includes("\n\n") && !s.startsWith("\n") && !s.endsWith("\n"));
  const noNl = text.filter((s) => !s.includes("\n"));
  const addr = fc.record({ street: noNl, city: noNl, postalCode: noNl }, { requiredKeys: [] });
  const contact: fc.Arbitrary<ContactFields> = fc.record({
    displayName: noNl, givenName: noNl, surname: noNl,
    emailAddresses: fc.array(fc.record({ address: fc.emailAddress() }), { maxLength: 3 }),
    businessPhones: fc.array(fc.stringMatching(/^\+?[0-9 ]{3,15}[0-9]$/), { maxLength: 2 }),
    homePhones: fc.array(fc.stringMatching(/^\+?[0-9 ]{3,15}[0-9]$/), { maxLength: 2 }),
    mobilePhone: fc.option(fc.stringMatching(/^\+?[0-9]{3,15}$/), { nil: undefined }),
    companyName: noNl, jobTitle: noNl, businessAddress: addr, homeAddress: addr,
    birthday: fc.option(fc.date({ min: new Date("1900-01-01"), max: new Date("2030-12-31"), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10)), { nil: undefined }),
    personalNotes: text, extra: fc.constant([] as string[]),
  }, { requiredKeys: ["displayName", "emailAddresses", "businessPhones", "homePhones", "extra"] }) as fc.Arbitrary<ContactFields>;

  it("Graph fields -> vCard 4.0 -> Graph fields is the identity (property)", () => {
    fc.assert(fc.property(contact, (c) => {
      const back = parseVCard(writeVCard(c));
      const norm = (x: ContactFields) => JSON.parse(JSON.stringify({ ...x, businessAddress: x.businessAddress && Object.keys(x.businessAddress).length ? x.businessAddress : undefined, homeAddress: x.homeAddress && Object.keys(x.homeAddress).length ? x.homeAddress : undefined }));
      expect(norm(back)).toEqual(norm(c));
    }), { numRuns: 300 });
  });
});
