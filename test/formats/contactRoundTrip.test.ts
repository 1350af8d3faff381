/**
 * Property tests (issue 18): cards with every field and every client quirk (2.1 / 3.0 / 4.0,
 * every line ending, quoted-printable, typed and custom-labelled phones, several addresses of
 * a kind with PO box and extended address, full ORG, several e-mails with types, nickname,
 * URLs, categories, IM, phonetic names, impossible and year-less birthdays, photos, unknown
 * properties) go store -> Exchange -> store and come back with every field; and no input
 * makes the reader throw anything but a typed error.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { parseVCard, parseVCards, writeVCard, type ContactFields } from "../../src/formats/vcard.js";
import { extraProperties, fromGraphContact, toGraphContact } from "../../src/formats/contactMapping.js";
import { isConnectorError } from "../../src/errors.js";

const word = fc.stringMatching(/^[A-Za-z][A-Za-z0-9 .'-]{0,14}[A-Za-z0-9]$/);
const text = fc.string({ unit: fc.oneof(fc.constantFrom(";", ",", "\\", ":", "\n", " ", "é", "ß", "😀", "="), fc.string({ minLength: 1, maxLength: 1 })), minLength: 1, maxLength: 40 })
  .filter((s) => !/[\r\u0000-\u0009\u000b-\u001f\u007f]/.test(s) && s.trim() === s && !s.includes("\n\n") && !s.startsWith("\n") && !s.endsWith("\n"));
const phone = fc.stringMatching(/^\+?[0-9][0-9 ]{3,12}[0-9]$/);
const email = fc.emailAddress();

/** QP for 2.1 (UTF-8 bytes, soft breaks every 60 characters). */
function qp(v: string): string {
  const enc = [...Buffer.from(v, "utf8")].map((b) => (b >= 33 && b <= 126 && b !== 61 && b !== 59 && b !== 92 ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, "0")}`)).join("");
  return enc.replace(/(.{60})/g, "$1=\r\n");
}
const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/,/g, "\\,").replace(/;/g, "\\;");

const card = fc.record({
  version: fc.constantFrom("2.1", "3.0", "4.0"),
  eol: fc.constantFrom("\r\n", "\n", "\r", "\r\r\n"),
  fn: text, given: word, family: word,
  org: fc.array(word, { minLength: 1, maxLength: 3 }),
  note: fc.option(text, { nil: undefined }),
  emails: fc.array(fc.record({ address: email, type: fc.constantFrom("", "work", "home") }), { maxLength: 5 }),
  phones: fc.array(fc.record({ number: phone, kind: fc.constantFrom("work", "home", "cell", "fax", "pager", "main", "", "custom") }), { maxLength: 6 }),
  adrs: fc.array(fc.record({ kind: fc.constantFrom("work", "home", ""), pobox: fc.option(word, { nil: "" }), ext: fc.option(word, { nil: "" }), street: word, city: word }), { maxLength: 3 }),
  bday: fc.option(fc.constantFrom("19440606", "1944-06-06", "--0415", "20230230", "--0229", "15000101"), { nil: undefined }),
  nick: fc.option(word, { nil: undefined }), urls: fc.array(fc.webUrl(), { maxLength: 2 }), cats: fc.array(word, { maxLength: 3 }),
  ims: fc.array(fc.emailAddress().map((a) => `xmpp:${a}`), { maxLength: 4 }), phonetic: fc.option(word, { nil: undefined }),
  photo: fc.option(fc.uint8Array({ minLength: 1, maxLength: 3000 }).map((b) => Buffer.from(b).toString("base64")), { nil: undefined }),
  x: fc.array(fc.tuple(fc.stringMatching(/^X-[A-Z]{1,8}$/), word), { maxLength: 3 }),
  qpNames: fc.boolean(),
});

type Card = typeof card extends fc.Arbitrary<infer T> ? T : never;
function build(c: Card): string {
  const L: string[] = ["BEGIN:VCARD", `VERSION:${c.version}`, "UID:prop-1"];
  const v21 = c.version === "2.1";
  const t = (types: string[]) => (types.length ? (v21 ? types.map((x) => `;${x.toUpperCase()}`).join("") : `;TYPE=${types.join(",")}`) : "");
  if (v21 && c.qpNames) L.push(`FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:${qp(c.fn)}`); else L.push(`FN:${v21 ? c.fn.replace(/\n/g, " ") : esc(c.fn)}`);
  L.push(`N:${esc(c.family)};${esc(c.given)};;;`);
  L.push(`ORG:${c.org.map(esc).join(";")}`);
  if (c.note) L.push(v21 ? `NOTE;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:${qp(c.note)}` : `NOTE:${esc(c.note)}`);
  for (const e of c.emails) L.push(`EMAIL${t(e.type ? [e.type] : [])}:${e.address}`);
  c.phones.forEach((p, i) => {
    if (p.kind === "custom") L.push(`item${i + 1}.TEL:${p.number}`, `item${i + 1}.X-ABLabel:Doorbell ${i}`);
    else L.push(`TEL${t(p.kind === "main" ? ["main"] : p.kind === "fax" ? ["work", "fax"] : p.kind ? [p.kind] : [])}:${p.number}`);
  });
  for (const a of c.adrs) L.push(`ADR${t(a.kind ? [a.kind] : [])}:${esc(a.pobox)};${esc(a.ext)};${esc(a.street)};${esc(a.city)};;;`);
  if (c.bday) L.push(`BDAY:${c.bday}`);
  if (c.nick) L.push(`NICKNAME:${esc(c.nick)}`);
  for (const u of c.urls) L.push(`URL:${u}`);
  if (c.cats.length && !v21) L.push(`CATEGORIES:${c.cats.map(esc).join(",")}`);
  if (!v21) for (const im of c.ims) L.push(`IMPP:${im}`);
  if (c.phonetic) L.push(`X-PHONETIC-FIRST-NAME:${esc(c.phonetic)}`);
  if (c.photo) L.push(c.version === "4.0" ? `PHOTO:data:image/jpeg;base64,${c.photo}` : c.version === "3.0" ? `PHOTO;ENCODING=b;TYPE=JPEG:${c.photo}` : `PHOTO;ENCODING=BASE64;JPEG:${c.photo}`, ...(v21 ? [""] : []));
  for (const [k, v] of c.x) L.push(`${k}:${esc(v)}`);
  L.push("END:VCARD");
  return L.join(c.eol) + c.eol;
}

/** Store -> Exchange (what Graph keeps: the props and our extended properties) -> store. */
function viaExchange(f: ContactFields): ContactFields {
  const g = toGraphContact(f);
  const stored = JSON.parse(JSON.stringify({ ...g.props, singleValueExtendedProperties: extraProperties(g.extra, g.shadows) })) as Record<string, unknown>;
  return parseVCard(writeVCard({ ...fromGraphContact(stored), uid: f.uid }));
}

describe("contacts round trip (property)", () => {
  it("store -> Exchange -> store keeps every field of every kind of card (300 runs)", () => {
    fc.assert(fc.property(card, (c) => {
      const f = parseVCard(build(c));
      const back = viaExchange(f);
      expect(back).toEqual(f);
      // And a second trip changes nothing (a stable state, no ping-pong).
      expect(viaExchange(back)).toEqual(f);
    }), { numRuns: 300 });
  });

  it("no input makes the reader throw anything but a typed error (property)", () => {
    const junk = fc.oneof(
      fc.string({ maxLength: 400 }),
      card.map(build).chain((t) => fc.tuple(fc.constant(t), fc.nat({ max: t.length }), fc.nat({ max: 40 }), fc.string({ maxLength: 10 })).map(([s, at, cut, ins]) => s.slice(0, at) + ins + s.slice(at + cut))),
    );
    fc.assert(fc.property(junk, (t) => {
      try { parseVCards(t); parseVCard(t); } catch (e) { expect(isConnectorError(e), String(e)).toBe(true); }
    }), { numRuns: 500 });
  });
});

describe("extras without a size cliff", () => {
  it("a 150 KB photo travels through several extended properties and comes back whole", () => {
    // Break seen red: main's single property cut at 30,000 characters -> the PHOTO line is dropped.
    const photo = Buffer.alloc(150_000, 7).toString("base64");
    const f = parseVCard(`BEGIN:VCARD\r\nVERSION:3.0\r\nUID:big\r\nFN:Big Photo\r\nPHOTO;ENCODING=b;TYPE=JPEG:${photo}\r\nEND:VCARD\r\n`);
    const props = extraProperties(toGraphContact(f).extra, toGraphContact(f).shadows);
    expect(props.length).toBeGreaterThan(5);
    expect(props.every((p) => p.value.length <= 30_000 + 10)).toBe(true);
    expect(viaExchange(f)).toEqual(f);
    expect(writeVCard(viaExchange(f)).replace(/\r\n /g, "")).toContain(`PHOTO:data:image/jpeg;base64,${photo}`);
  });
  it("reads the single JSON property main wrote", () => {
    const f = fromGraphContact({ displayName: "Old", singleValueExtendedProperties: [{ id: "String {6B9E9B4C-1F2D-4C55-9E1B-5A3C2D7E8F01} Name UmcVCardExtra", value: JSON.stringify(["X-AVAYA-PIN:42"]) }] });
    expect(f.extra).toEqual(["X-AVAYA-PIN:42"]);
  });
});
