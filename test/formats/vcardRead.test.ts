/**
 * vCard reading of every version and line ending, and writing of valid vCard 4.0 only
 * (issue 18, point 2), on the real-world samples of test/fixtures/people (origins in its
 * README). What we write is re-read with ical.js, an independent parser, as a strict reader.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import ICAL from "ical.js";
import { parseVCard, parseVCards, writeVCard } from "../../src/formats/vcard.js";
import { isConnectorError } from "../../src/errors.js";
import { extraProperties, fromGraphContact, toGraphContact } from "../../src/formats/contactMapping.js";

const fixture = (name: string) => fs.readFileSync(path.join(import.meta.dirname, "../fixtures/people", name), "utf8");

/** Every property ical.js reads from what we wrote, and checks that hold for valid 4.0. */
function strictRead(text: string) {
  const jcard = ICAL.parse(text) as unknown as unknown[];
  const card = new ICAL.Component(jcard);
  expect(card.name).toBe("vcard");
  expect(card.getFirstPropertyValue("version")).toBe("4.0");
  const props = card.getAllProperties();
  for (const p of props) {
    // 2.1/3.0 encodings never reach a 4.0 card (RFC 6350 Appendix A).
    expect(p.getParameter("encoding"), p.name).toBeUndefined();
    expect(p.getParameter("charset"), p.name).toBeUndefined();
    if (["photo", "logo", "sound", "key"].includes(p.name)) expect(String(p.getFirstValue())).toMatch(/^(data:[a-z]+\/[a-z0-9.+-]+;base64,|https?:)/);
  }
  expect(props.filter((p) => p.name === "version")).toHaveLength(1);
  expect(props.some((p) => ["label", "agent", "name", "mailer", "class", "sort-string", "profile"].includes(p.name))).toBe(false);
  return card;
}

describe("vCard 2.1 / 3.0 / 4.0 samples", () => {
  it("Wikipedia 2.1: bare parameters, quoted-printable LABEL with soft breaks -> ADR's LABEL", () => {
    const c = parseVCard(fixture("wikipedia-2.1.vcf"));
    expect(c).toMatchObject({ displayName: "Forrest Gump", surname: "Gump", givenName: "Forrest", title: "Mr.", companyName: "Bubba Gump Shrimp Co.", businessPhones: ["(111) 555-1212"], homePhones: ["(404) 555-1212"] });
    const card = strictRead(writeVCard(c));
    const labels = card.getAllProperties("adr").map((p) => p.getParameter("label"));
    expect(labels).toContain("100 Waters Edge\nBaytown, LA 30314\nUnited States of America");
    expect(parseVCard(writeVCard(c))).toEqual(c);
  });

  it("RFC 2426: two cards in one object, each read", () => {
    const cards = parseVCards(fixture("rfc2426-section7.vcf"));
    expect(cards.map((x) => ("fields" in x ? x.fields.displayName : x.error.message))).toEqual(["Frank Dawson", "Tim Howes"]);
    for (const x of cards) if ("fields" in x) strictRead(writeVCard(x.fields));
    expect(() => parseVCard(fixture("rfc2426-section7.vcf"))).toThrow(/2 vCards/);
  });

  it("RFC 6350: year-less birthday, tel: URIs with a quoted TYPE list", () => {
    const c = parseVCard(fixture("rfc6350-section8.vcf"));
    expect(c).toMatchObject({ displayName: "Simon Perreault", birthday: "---02-03", companyName: "Viagenie" });
    strictRead(writeVCard(c));
    expect(writeVCard(c)).toContain("BDAY:--0203");
  });

  it("Android 2.1: UTF-8 quoted-printable names and notes, BASE64 photo -> data: URI", () => {
    const c = parseVCard(fixture("android-2.1.vcf"));
    // Break seen red: no quoted-printable decoding -> "Nu=C3=B1ez".
    expect(c).toMatchObject({ displayName: "José Nuñez", surname: "Nuñez", givenName: "José", mobilePhone: "+34 600 555 014", personalNotes: "Lleva el equipo de Madrid\nPrefiere mensajes" });
    const card = strictRead(writeVCard(c));
    expect(String(card.getFirstPropertyValue("photo"))).toMatch(/^data:image\/jpeg;base64,\/9j\/4AAQ/);
    expect(parseVCard(writeVCard(c))).toEqual(c);
  });

  it("iOS: CR CR LF line endings, itemN groups with X-ABLabel kept together", () => {
    const c = parseVCard(fixture("apple-ios-crcrlf.vcf"));
    expect(c).toMatchObject({ displayName: "John Doe", surname: "Doe", companyName: "Example.com Inc.", department: "Research", homePhones: ["+4915199999999"] });
    // Apple's year 1604 is "no year" (contactValidation.ts); the card's own line comes back as written.
    // Break seen red: reading 1604 as a real year -> after Exchange (1604 = no year) the card came back as BDAY:--0415 (bench: 92 % fields on this sample).
    expect(c.birthday).toBe("---04-15");
    const text = writeVCard(c);
    strictRead(text);
    expect(text).toContain("item1.X-ABLABEL:Doorbell");
    expect(text).toContain("BDAY;VALUE=date:16040415");
    expect(parseVCard(text)).toEqual(c);
  });

  it("every line-ending variant reads the same card, folded lines included", () => {
    // Break seen red: main's newline rule (/\r\n|\r/ -> LF) -> CR CR LF before a folded line leaves
    // an empty line between, the continuation stands alone and the card is refused.
    const lf = "BEGIN:VCARD\nVERSION:3.0\nFN:Line\n  Ending\nNOTE:one\\ntwo\nTEL;TYPE=HOME:+1 555\nEND:VCARD\n";
    const want = parseVCard(lf);
    for (const eol of ["\r\n", "\r", "\r\r\n"]) expect(parseVCard(lf.replace(/\n/g, eol)), JSON.stringify(eol)).toEqual(want);
  });

  it("a message with a good and a broken card: one read, one refused with its reason", () => {
    const text = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Good\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:9.9\r\nFN:Bad\r\nEND:VCARD\r\n";
    const [good, bad] = parseVCards(text);
    expect(good && "fields" in good && good.fields.displayName).toBe("Good");
    expect(bad && "error" in bad && isConnectorError(bad.error, "BAD_REQUEST") && bad.error.message).toMatch(/version 9.9/);
  });
});

describe("every sample through Exchange's fields and back", () => {
  it("keeps every field of every sample (what `npm run bench -- people` measures through the simulator)", () => {
    const dir = path.join(import.meta.dirname, "../fixtures/people");
    for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".vcf"))) {
      for (const c of parseVCards(fixture(file))) {
        if (!("fields" in c)) throw c.error;
        const g = toGraphContact(c.fields);
        const stored = JSON.parse(JSON.stringify({ ...g.props, singleValueExtendedProperties: extraProperties(g.extra, g.shadows) })) as Record<string, unknown>;
        expect(parseVCard(writeVCard({ ...fromGraphContact(stored), uid: c.fields.uid })), file).toEqual(c.fields);
      }
    }
  });
});
