/**
 * vCard 3.0 (RFC 2426) and 4.0 (RFC 6350) reading, vCard 4.0 writing, mapped to the fields
 * Graph contacts hold (https://learn.microsoft.com/en-us/graph/api/resources/contact).
 *
 * Nothing is dropped: vCard properties Graph cannot hold are kept verbatim in `extra` (the
 * sync stores them in an extended property and writes them back), and parameters we do not
 * interpret survive a round trip on the properties we do.
 */
import { ConnectorError, ensureConnectorError } from "../errors.js";
import { normaliseLine, parseLine4, readCardLines, serializeLine, splitCards, unescapeText, type ContentLine } from "./vcardLines.js";

export interface PostalAddress {
  street?: string;
  city?: string;
  state?: string;
  postalCode?: string;
  countryOrRegion?: string;
}

export interface ContactFields {
  uid?: string;
  displayName?: string;
  givenName?: string;
  surname?: string;
  middleName?: string;
  title?: string; // honorific prefix
  generation?: string; // suffix
  emailAddresses: Array<{ address: string; name?: string }>;
  businessPhones: string[];
  homePhones: string[];
  mobilePhone?: string;
  companyName?: string;
  department?: string;
  jobTitle?: string;
  businessAddress?: PostalAddress;
  homeAddress?: PostalAddress;
  otherAddress?: PostalAddress;
  /** YYYY-MM-DD, or ---MM-DD without a year (as read; see contactValidation.ts). */
  birthday?: string;
  personalNotes?: string;
  nickName?: string;
  businessHomePage?: string;
  categories?: string[];
  imAddresses?: string[];
  initials?: string;
  fileAs?: string;
  yomiGivenName?: string;
  yomiSurname?: string;
  yomiCompanyName?: string;
  /** Unmapped vCard content lines in their vCard 4.0 form (folded lines joined). */
  extra: string[];
  /**
   * The store's own 4.0 lines of mapped values (their parameters, itemN groups, PO box and
   * extended address, ORG units beyond the second): written back instead of a fresh line
   * whenever the mapped value is still the same (src/formats/contactMapping.ts).
   */
  shadows?: string[];
}

const GENERATED_FN = "X-UMC-GENERATED-FN";

export { MAX_VCARD_BYTES } from "./vcardLines.js";

/** RFC 6350 section 3.4 escaping. */
function escape(v: string): string {
  return v.replace(/\r\n?/g, "\n").replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/,/g, "\\,").replace(/;/g, "\\;");
}
const unescape = unescapeText;
/** Splits a structured value on unescaped ";" (N, ADR, ORG). */
function components(v: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < v.length; i++) {
    if (v[i] === "\\" && i + 1 < v.length) { cur += v[i]! + v[i + 1]!; i++; continue; }
    if (v[i] === ";") { out.push(unescape(cur)); cur = ""; continue; }
    cur += v[i];
  }
  out.push(unescape(cur));
  return out;
}

const types = (l: ContentLine) => l.params.TYPE ?? [];

/** The cards of one stored message, each read or refused with its reason (a typed error). */
export function parseVCards(text: string): Array<{ fields: ContactFields; text: string } | { error: ConnectorError; text: string }> {
  const cards = splitCards(text);
  if (!cards.length) return [{ error: new ConnectorError("BAD_REQUEST", "not a vCard (no BEGIN:VCARD)"), text }];
  return cards.map((t) => {
    try { return { fields: parseVCard(t), text: t }; } catch (e) { return { error: ensureConnectorError(e, "BAD_REQUEST"), text: t }; }
  });
}

/** Parses one vCard (2.1, 3.0 or 4.0). Throws BAD_REQUEST on anything that is not exactly one. */
export function parseVCard(text: string): ContactFields {
  const cards = splitCards(text);
  if (cards.length > 1) throw new ConnectorError("BAD_REQUEST", `${cards.length} vCards where one was expected`);
  const { lines } = readCardLines(cards[0] ?? text);
  const c: ContactFields = { emailAddresses: [], businessPhones: [], homePhones: [], extra: [] };
  let generatedFn = false;
  const shadows: string[] = [];
  for (const l of lines) {
    if (l.name === "PRODID") continue;
    if (l.name === GENERATED_FN) { generatedFn = true; continue; }
    const raw = serializeLine(l);
    const slot = readMapped(c, l);
    if (slot === undefined) c.extra.push(raw);
    // The line as the store wrote it, when it says more than the mapped value does.
    else if (serializeLine(l) !== serializeLine(freshLine(slot, l))) shadows.push(raw);
  }
  if (generatedFn) delete c.displayName;
  if (shadows.length) c.shadows = shadows.sort(); // one canonical order, whichever order the card had
  return c;
}

/**
 * Puts one line's value into its field (see the table in contactMapping.ts); returns the
 * slot it filled, or undefined when the field is taken or there is none (the line is an extra).
 */
function readMapped(c: ContactFields, l: ContentLine): string | undefined {
  const t = types(l);
  const text = () => unescape(l.value);
  const once = <K extends keyof ContactFields>(k: K, v: ContactFields[K]) => { if (c[k] !== undefined || v === undefined || v === "") return undefined; c[k] = v; return String(k); };
  switch (l.name) {
    case "UID": return once("uid", text());
    case "FN": return once("displayName", text());
    case "N": {
      if (c.surname !== undefined || c.givenName !== undefined || c.middleName !== undefined || c.title !== undefined || c.generation !== undefined) return undefined;
      const [surname, given, middle, prefix, suffix] = components(l.value);
      c.surname = surname || undefined; c.givenName = given || undefined; c.middleName = middle || undefined;
      c.title = prefix || undefined; c.generation = suffix || undefined;
      return "N";
    }
    case "EMAIL": { const address = text().replace(/^mailto:/i, ""); if (!address) return undefined; c.emailAddresses.push({ address, ...(l.params["X-UMC-NAME"]?.[0] ? { name: l.params["X-UMC-NAME"][0] } : {}) }); return "EMAIL"; }
    case "TEL": {
      const num = text().replace(/^tel:/i, "");
      if (!num) return undefined;
      // Graph has one mobile number; a second one stays an extra rather than being dropped.
      // Graph v1.0 contacts have no fax or pager field, only businessPhones, homePhones and
      // mobilePhone (https://learn.microsoft.com/en-us/graph/api/resources/contact; the typed
      // `phones` collection is beta only): a fax or pager number stays on the store side (an
      // extra, merged back on every write), so Outlook never offers it as a voice number.
      if (t.includes("fax") || t.includes("pager")) return undefined;
      if (t.includes("cell")) return once("mobilePhone", num);
      if (t.includes("home")) { c.homePhones.push(num); return "TEL:home"; }
      c.businessPhones.push(num);
      return "TEL:work";
    }
    case "ORG": {
      if (c.companyName !== undefined || c.department !== undefined) return undefined;
      const [company, dept] = components(l.value);
      c.companyName = company || undefined; c.department = dept || undefined;
      return c.companyName || c.department ? "ORG" : undefined;
    }
    case "TITLE": return once("jobTitle", text());
    case "ADR": {
      // pobox;ext;street;locality;region;code;country (RFC 6350 section 6.3.1); one address of each kind in Graph.
      const [, , street, city, state, postalCode, country] = components(l.value);
      const adr: PostalAddress = strip({ street, city, state, postalCode, countryOrRegion: country });
      if (!Object.keys(adr).length) return undefined;
      const kind = t.includes("home") ? "homeAddress" : t.includes("work") ? "businessAddress" : "otherAddress";
      return once(kind, adr) && `ADR:${kind}`;
    }
    case "BDAY": {
      // RFC 6350 section 4.3.1 date forms: YYYYMMDD, YYYY-MM-DD (3.0), --MMDD and --MM-DD
      // (no year). Read as written; whether Graph can hold it is decided before Graph
      // (src/formats/contactValidation.ts), so an impossible date is kept, not lost.
      const v = l.value.trim();
      const m = v.match(/^(\d{4})-?(\d{2})-?(\d{2})(?:$|T)/) ?? v.match(/^(--)-?(\d{2})-?(\d{2})$/);
      // Year 1604 is how Apple and Outlook write "no year": the same birthday as --MMDD.
      return m ? once("birthday", `${m[1] === "1604" ? "--" : m[1]}-${m[2]}-${m[3]}`) : undefined;
    }
    case "NOTE": return once("personalNotes", text());
    case "NICKNAME": return once("nickName", components(l.value.replace(/(?<!\\),/g, ";"))[0]);
    case "URL": return once("businessHomePage", text());
    case "CATEGORIES": return once("categories", l.value.split(/(?<!\\),/).map(unescape).filter(Boolean));
    case "IMPP": { const v = text(); if (!v || (c.imAddresses?.length ?? 0) >= GRAPH_MAX_IM) return undefined; (c.imAddresses ??= []).push(v); return "IMPP"; }
    case "X-INITIALS": return once("initials", text());
    case "X-FILE-AS": return once("fileAs", text());
    case "X-PHONETIC-FIRST-NAME": return once("yomiGivenName", text());
    case "X-PHONETIC-LAST-NAME": return once("yomiSurname", text());
    case "X-PHONETIC-ORG": return once("yomiCompanyName", text());
  }
  return undefined;
}

/** Graph holds three IM addresses per contact (contact resource, imAddresses). */
export const GRAPH_MAX_IM = 3;

/** The line writeVCard would write for the value this line filled (to tell whether the store's line says more). */
function freshLine(slot: string, l: ContentLine): ContentLine {
  const probe: ContactFields = { emailAddresses: [], businessPhones: [], homePhones: [], extra: [] };
  readMapped(probe, l);
  const written = mappedLines(probe).map(parseLine4).filter((x) => x.name === l.name);
  return written[0] ?? { name: slot, params: {}, value: "" };
}

function strip(a: PostalAddress): PostalAddress {
  return Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined && v !== "")) as PostalAddress;
}

/** RFC 6350 section 3.2: lines longer than 75 octets SHOULD be folded. */
function fold(line: string): string {
  const out: string[] = [];
  let buf = Buffer.from(line, "utf8");
  let first = true;
  while (buf.length > (first ? 75 : 74)) {
    let cut = first ? 75 : 74;
    while (cut > 0 && (buf[cut]! & 0xc0) === 0x80) cut--; // never split a UTF-8 sequence
    out.push((first ? "" : " ") + buf.subarray(0, cut).toString("utf8"));
    buf = buf.subarray(cut);
    first = false;
  }
  out.push((first ? "" : " ") + buf.toString("utf8"));
  return out.join("\r\n");
}

/** The card's birthday (YYYY-MM-DD or ---MM-DD) as a vCard 4.0 BDAY value (YYYYMMDD or --MMDD). */
export function birthdayVCardValue(b: string): string {
  return b.startsWith("---") ? `--${b.slice(3).replace(/-/g, "")}` : b.replace(/-/g, "");
}

/** The mapped fields as fresh 4.0 lines (no UID / FN / extras). */
function mappedLines(c: ContactFields): string[] {
  const lines: string[] = [];
  if (c.uid) lines.push(`UID:${escape(c.uid)}`);
  if (c.displayName !== undefined) lines.push(`FN:${escape(c.displayName)}`);
  if (c.surname || c.givenName || c.middleName || c.title || c.generation) {
    lines.push(`N:${[c.surname, c.givenName, c.middleName, c.title, c.generation].map((v) => escape(v ?? "")).join(";")}`);
  }
  for (const e of c.emailAddresses) lines.push(`EMAIL${e.name && e.name !== e.address ? `;X-UMC-NAME=${paramText(e.name)}` : ""}:${escape(e.address)}`);
  for (const p of c.businessPhones) lines.push(`TEL;TYPE=work,voice:${escape(p)}`);
  for (const p of c.homePhones) lines.push(`TEL;TYPE=home,voice:${escape(p)}`);
  if (c.mobilePhone) lines.push(`TEL;TYPE=cell:${escape(c.mobilePhone)}`);
  if (c.companyName || c.department) lines.push(`ORG:${escape(c.companyName ?? "")}${c.department ? ";" + escape(c.department) : ""}`);
  if (c.jobTitle) lines.push(`TITLE:${escape(c.jobTitle)}`);
  const adr = (type: string | undefined, a: PostalAddress | undefined) => {
    if (!a || !Object.keys(a).length) return;
    const v = ["", "", a.street, a.city, a.state, a.postalCode, a.countryOrRegion].map((x) => escape(x ?? "")).join(";");
    lines.push(`ADR${type ? `;TYPE=${type}` : ""}:${v}`);
  };
  adr("work", c.businessAddress);
  adr("home", c.homeAddress);
  adr(undefined, c.otherAddress);
  if (c.birthday) lines.push(`BDAY:${birthdayVCardValue(c.birthday)}`);
  if (c.personalNotes) lines.push(`NOTE:${escape(c.personalNotes)}`);
  if (c.nickName) lines.push(`NICKNAME:${escape(c.nickName)}`);
  if (c.businessHomePage) lines.push(`URL:${escape(c.businessHomePage)}`);
  if (c.categories?.length) lines.push(`CATEGORIES:${c.categories.map(escape).join(",")}`);
  for (const im of c.imAddresses ?? []) lines.push(`IMPP:${escape(im)}`);
  if (c.initials) lines.push(`X-INITIALS:${escape(c.initials)}`);
  if (c.fileAs) lines.push(`X-FILE-AS:${escape(c.fileAs)}`);
  if (c.yomiGivenName) lines.push(`X-PHONETIC-FIRST-NAME:${escape(c.yomiGivenName)}`);
  if (c.yomiSurname) lines.push(`X-PHONETIC-LAST-NAME:${escape(c.yomiSurname)}`);
  if (c.yomiCompanyName) lines.push(`X-PHONETIC-ORG:${escape(c.yomiCompanyName)}`);
  return lines;
}

const paramText = (v: string) => (/[:;,"\n^]/.test(v) ? `"${v.replace(/\^/g, "^^").replace(/\n/g, "^n").replace(/"/g, "^'")}"` : v);

/**
 * The value a line stands for, the same whichever way it was written: a fresh line and the
 * store's shadow of it match when this key does.
 */
function mappedKey(line: string): string | undefined {
  try {
    const l = parseLine4(line);
    const probe: ContactFields = { emailAddresses: [], businessPhones: [], homePhones: [], extra: [] };
    const slot = readMapped(probe, l);
    if (!slot) return undefined;
    const { extra: _x, ...value } = probe;
    return `${slot}|${JSON.stringify(value)}`;
  } catch { return undefined; }
}

/** Writes vCard 4.0. */
export function writeVCard(c: ContactFields): string {
  const lines: string[] = ["BEGIN:VCARD", "VERSION:4.0"];
  if (c.displayName === undefined) {
    // FN is required (RFC 6350 section 6.2.1); a made-up one is marked, so reading the card
    // back does not invent a display name.
    lines.push(`FN:${escape([c.givenName, c.surname].filter(Boolean).join(" ") || c.emailAddresses[0]?.address || "")}`, `${GENERATED_FN}:TRUE`);
  }
  // A mapped value the store wrote with more (TYPE, itemN group, PO box...) is written its way.
  const shadows = new Map<string, string[]>();
  for (const s of c.shadows ?? []) { const k = mappedKey(s); if (k) shadows.set(k, [...(shadows.get(k) ?? []), s]); }
  for (const fresh of mappedLines(c)) {
    const k = mappedKey(fresh);
    const own = k ? shadows.get(k)?.shift() : undefined;
    lines.push(own ?? fresh);
  }
  // Extras are kept in their 4.0 form; ones stored before (3.0 lines) are converted here, never copied.
  // An extra that is a mapped value Exchange had no room for (a fourth e-mail) gets its shadow too.
  for (const x of c.extra) {
    let line: string;
    try { line = serializeLine(normaliseLine(x)); } catch { continue; } // not a content line: nothing a reader could use
    const k = mappedKey(line);
    lines.push((k ? shadows.get(k)?.shift() : undefined) ?? line);
  }
  lines.push("END:VCARD");
  return lines.map(fold).join("\r\n") + "\r\n";
}
