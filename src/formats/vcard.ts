/**
 * vCard 3.0 (RFC 2426) and 4.0 (RFC 6350) reading, vCard 4.0 writing, mapped to the fields
 * Graph contacts hold (https://learn.microsoft.com/en-us/graph/api/resources/contact).
 *
 * Nothing is dropped: vCard properties Graph cannot hold are kept verbatim in `extra` (the
 * sync stores them in an extended property and writes them back), and parameters we do not
 * interpret survive a round trip on the properties we do.
 */
import { ConnectorError } from "../errors.js";

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
  /** Unmapped vCard content lines, verbatim (folded lines joined). */
  extra: string[];
}

const GENERATED_FN = "X-UMC-GENERATED-FN";

/** Hostile-input bounds: a contact card is small. */
export const MAX_VCARD_BYTES = 256 * 1024;
const MAX_LINES = 2000;

interface ContentLine {
  group?: string;
  name: string;
  params: Record<string, string[]>;
  value: string;
  raw: string;
}

/** RFC 6350 section 3.2: a CRLF followed by a space or tab continues the line. */
function unfold(text: string): string[] {
  return text.replace(/\r\n|\r/g, "\n").replace(/\n[ \t]/g, "").split("\n").filter((l) => l.trim() !== "");
}

function parseLine(raw: string): ContentLine {
  // name *(";" param) ":" value; a colon inside a quoted parameter value does not end the name.
  let i = 0;
  let inQuotes = false;
  for (; i < raw.length; i++) {
    const c = raw[i];
    if (c === '"') inQuotes = !inQuotes;
    else if (c === ":" && !inQuotes) break;
  }
  if (i >= raw.length) throw new ConnectorError("BAD_REQUEST", "vCard line without a colon");
  const head = raw.slice(0, i);
  const value = raw.slice(i + 1);
  const parts = head.match(/(?:[^;"]+|"[^"]*")+/g) ?? [];
  let name = (parts.shift() ?? "").trim();
  let group: string | undefined;
  const dot = name.indexOf(".");
  if (dot > 0) { group = name.slice(0, dot); name = name.slice(dot + 1); }
  if (!/^[A-Za-z0-9-]+$/.test(name)) throw new ConnectorError("BAD_REQUEST", "vCard property name is invalid");
  const params: Record<string, string[]> = {};
  for (const p of parts) {
    const eq = p.indexOf("=");
    // vCard 3.0 allows bare TYPE values ("TEL;WORK;VOICE:...").
    const key = (eq < 0 ? "TYPE" : p.slice(0, eq)).trim().toUpperCase();
    const vals = (eq < 0 ? p : p.slice(eq + 1)).split(",").map((v) => v.replace(/^"|"$/g, "").trim().toLowerCase());
    (params[key] ??= []).push(...vals);
  }
  return { group, name: name.toUpperCase(), params, value, raw };
}

/** RFC 6350 section 3.4 escaping. */
function unescape(v: string): string {
  return v.replace(/\\([\\,;nN])/g, (_, c: string) => (c === "n" || c === "N" ? "\n" : c));
}
function escape(v: string): string {
  return v.replace(/\r\n?/g, "\n").replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/,/g, "\\,").replace(/;/g, "\\;");
}
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

/** Parses one vCard (3.0 or 4.0). Throws BAD_REQUEST on anything that is not one. */
export function parseVCard(text: string): ContactFields {
  if (Buffer.byteLength(text) > MAX_VCARD_BYTES) throw new ConnectorError("PAYLOAD_TOO_LARGE", "vCard too large");
  const lines = unfold(text);
  if (lines.length > MAX_LINES) throw new ConnectorError("BAD_REQUEST", "vCard has too many lines");
  const parsed = lines.map(parseLine);
  if (parsed[0]?.name !== "BEGIN" || parsed[0].value.trim().toUpperCase() !== "VCARD") throw new ConnectorError("BAD_REQUEST", "not a vCard (no BEGIN:VCARD)");
  const endAt = parsed.findIndex((l) => l.name === "END" && l.value.trim().toUpperCase() === "VCARD");
  if (endAt < 0) throw new ConnectorError("BAD_REQUEST", "vCard has no END:VCARD");
  const version = parsed.find((l) => l.name === "VERSION")?.value.trim();
  if (version !== "3.0" && version !== "4.0") throw new ConnectorError("BAD_REQUEST", `unsupported vCard version ${version ?? "(none)"}`);
  const c: ContactFields = { emailAddresses: [], businessPhones: [], homePhones: [], extra: [] };
  let generatedFn = false;
  for (const l of parsed.slice(1, endAt)) {
    const t = types(l);
    switch (l.name) {
      case "VERSION": case "PRODID": break;
      case "UID": c.uid = unescape(l.value); break;
      case "FN": c.displayName = unescape(l.value); break;
      case GENERATED_FN: generatedFn = true; break;
      case "N": {
        const [surname, given, middle, prefix, suffix] = components(l.value);
        c.surname = surname || undefined; c.givenName = given || undefined; c.middleName = middle || undefined;
        c.title = prefix || undefined; c.generation = suffix || undefined;
        break;
      }
      case "EMAIL": c.emailAddresses.push({ address: unescape(l.value).replace(/^mailto:/i, "") }); break;
      case "TEL": {
        const num = unescape(l.value).replace(/^tel:/i, "");
        // Graph has one mobile number; a second one is kept verbatim rather than dropped.
        if (t.includes("cell")) { if (c.mobilePhone === undefined) c.mobilePhone = num; else c.extra.push(l.raw); }
        else if (t.includes("home")) c.homePhones.push(num);
        else c.businessPhones.push(num);
        break;
      }
      case "ORG": { const [company, dept] = components(l.value); c.companyName = company || undefined; c.department = dept || undefined; break; }
      case "TITLE": c.jobTitle = unescape(l.value); break;
      case "ADR": {
        // pobox;ext;street;locality;region;code;country (RFC 6350 section 6.3.1)
        const [, , street, city, state, postalCode, country] = components(l.value);
        const adr: PostalAddress = strip({ street, city, state, postalCode, countryOrRegion: country });
        if (t.includes("home")) c.homeAddress = adr;
        else if (t.includes("work")) c.businessAddress = adr;
        else c.otherAddress = adr;
        break;
      }
      case "BDAY": {
        // RFC 6350 section 4.3.1 date forms: YYYYMMDD, YYYY-MM-DD (3.0), --MMDD and --MM-DD
        // (no year). Read as written; whether Graph can hold it is decided before Graph
        // (src/formats/contactValidation.ts), so an impossible date is kept, not lost.
        const v = l.value.trim();
        const m = v.match(/^(\d{4})-?(\d{2})-?(\d{2})(?:$|T)/) ?? v.match(/^(--)-?(\d{2})-?(\d{2})$/);
        if (m && c.birthday === undefined) c.birthday = `${m[1]}-${m[2]}-${m[3]}`; else c.extra.push(l.raw);
        break;
      }
      case "NOTE": c.personalNotes = unescape(l.value); break;
      default: c.extra.push(l.raw);
    }
  }
  if (generatedFn) delete c.displayName;
  return c;
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

/** Writes vCard 4.0. */
export function writeVCard(c: ContactFields): string {
  const lines: string[] = ["BEGIN:VCARD", "VERSION:4.0"];
  if (c.uid) lines.push(`UID:${escape(c.uid)}`);
  const fn = c.displayName ?? ([c.givenName, c.surname].filter(Boolean).join(" ") || c.emailAddresses[0]?.address || "");
  lines.push(`FN:${escape(fn)}`); // FN is required (RFC 6350 section 6.2.1)
  // A made-up FN is marked, so reading the card back does not invent a display name.
  if (c.displayName === undefined) lines.push(`${GENERATED_FN}:TRUE`);
  if (c.surname || c.givenName || c.middleName || c.title || c.generation) {
    lines.push(`N:${[c.surname, c.givenName, c.middleName, c.title, c.generation].map((v) => escape(v ?? "")).join(";")}`);
  }
  for (const e of c.emailAddresses) lines.push(`EMAIL:${escape(e.address)}`);
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
  lines.push(...c.extra);
  lines.push("END:VCARD");
  return lines.map(fold).join("\r\n") + "\r\n";
}
