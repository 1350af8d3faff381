/**
 * vCard content lines of any version in, vCard 4.0 content lines out.
 *
 * Read: vCard 2.1 (the Versit spec, https://github.com/emacsmirror/addressbook/blob/master/vcard-21.txt:
 * bare parameters, ENCODING=QUOTED-PRINTABLE with soft line breaks, ENCODING=BASE64, CHARSET),
 * 3.0 (RFC 2426: ENCODING=b, TYPE=pref, 3.0-only properties) and 4.0 (RFC 6350). Every line
 * ending is accepted: CRLF, LF, CR, and iOS's CR CR LF. A message may hold several cards
 * (splitCards).
 *
 * Each line is converted to its vCard 4.0 form as it is read, so what the connector writes
 * is 4.0 only (RFC 6350 section 3.3 syntax): values decoded (quoted-printable, charsets) and
 * re-escaped (section 3.4); inline binary as a data: URI (section 6.2.4, PHOTO); 3.0-only
 * properties converted (Appendix A: LABEL -> ADR's LABEL parameter, SORT-STRING -> SORT-AS,
 * AGENT -> RELATED;TYPE=agent, NAME/MAILER/CLASS -> X- properties, PROFILE dropped as
 * boilerplate); TYPE=pref -> PREF=1; dates in basic format (section 4.3).
 */
import { ConnectorError } from "../errors.js";

export interface ContentLine {
  group?: string;
  /** Upper case. */
  name: string;
  /** Parameter names upper case; TYPE values lower case, others as written. */
  params: Record<string, string[]>;
  /** The value in vCard 4.0 escaped form. */
  value: string;
}

/** Hostile-input bounds: a contact card is small. */
export const MAX_VCARD_BYTES = 256 * 1024;
export const MAX_LINES = 2000;
/** Cards in one stored message; more is refused (a whole address book is not one contact item). */
export const MAX_CARDS_PER_MESSAGE = 200;

/** Every line ending (CRLF, LF, CR, CR CR LF) as one LF. */
export const normaliseNewlines = (text: string) => text.replace(/\r*\n|\r+/g, "\n");

/**
 * The cards of one message, each as its own text (nesting of 2.1's AGENT cards respected).
 * Text outside BEGIN/END is ignored; a card without its END is returned as it is, so reading
 * it refuses it with a reason.
 */
export function splitCards(text: string): string[] {
  const lines = normaliseNewlines(text).split("\n");
  const cards: string[] = [];
  let depth = 0;
  let cur: string[] = [];
  for (const l of lines) {
    const t = l.trim().toUpperCase();
    if (/^BEGIN\s*:\s*VCARD$/.test(t)) { depth++; if (depth === 1) cur = []; }
    if (depth > 0) cur.push(l);
    if (/^END\s*:\s*VCARD$/.test(t) && depth > 0) { depth--; if (depth === 0) { cards.push(cur.join("\n")); cur = []; } }
    if (cards.length > MAX_CARDS_PER_MESSAGE) throw new ConnectorError("PAYLOAD_TOO_LARGE", `more than ${MAX_CARDS_PER_MESSAGE} vCards in one message`);
  }
  if (depth > 0) cards.push(cur.join("\n"));
  return cards;
}

/** Physical lines -> logical lines: folding (a newline and one space or tab) and 2.1's quoted-printable soft breaks. */
function unfold(text: string): string[] {
  const physical = normaliseNewlines(text).split("\n");
  const out: string[] = [];
  for (const l of physical) {
    const prev = out.length ? out[out.length - 1]! : undefined;
    if (prev !== undefined && (l.startsWith(" ") || l.startsWith("\t"))) { out[out.length - 1] = prev + l.slice(1); continue; }
    // A quoted-printable value continues after a line ending in "=" (RFC 2045 section 6.7 rule 5).
    if (prev !== undefined && /QUOTED-PRINTABLE/i.test(prev.slice(0, prev.indexOf(":") + 1)) && prev.endsWith("=")) { out[out.length - 1] = prev.slice(0, -1) + l; continue; }
    out.push(l);
  }
  return out.filter((l) => l.trim() !== "");
}

const BARE_ENCODINGS = new Set(["QUOTED-PRINTABLE", "BASE64", "B", "8BIT", "7BIT"]);

function parseRaw(raw: string): { group?: string; name: string; params: Record<string, string[]>; value: string } {
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
  if (!/^[A-Za-z0-9-]+$/.test(name) || (group !== undefined && !/^[A-Za-z0-9-]+$/.test(group))) throw new ConnectorError("BAD_REQUEST", "vCard property name is invalid");
  const params: Record<string, string[]> = {};
  for (const p of parts) {
    const eq = p.indexOf("=");
    const bare = p.trim();
    // 2.1 and 3.0 allow bare values: "TEL;WORK;VOICE:", "NOTE;QUOTED-PRINTABLE:".
    const key = eq < 0 ? (BARE_ENCODINGS.has(bare.toUpperCase()) ? "ENCODING" : "TYPE") : p.slice(0, eq).trim().toUpperCase();
    const rawVals = eq < 0 ? [bare] : splitParamValues(p.slice(eq + 1));
    // TYPE="voice,home" is two types (RFC 6350's own TEL example quotes the list).
    const vals = (key === "TYPE" ? rawVals.flatMap((v) => v.split(",")) : rawVals).map((v) => v.trim()).filter((v) => v !== "").map((v) => (key === "TYPE" || key === "ENCODING" || key === "VALUE" ? v.toLowerCase() : v));
    (params[key] ??= []).push(...vals);
  }
  return { group, name: name.toUpperCase(), params, value };
}

/** "a,b" or "\"a,b\",c": commas inside quotes do not split (RFC 6350 section 5). */
function splitParamValues(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let q = false;
  for (const c of s) {
    if (c === '"') { q = !q; continue; }
    if (c === "," && !q) { out.push(cur); cur = ""; continue; }
    cur += c;
  }
  out.push(cur);
  return out;
}

/** Quoted-printable -> bytes (RFC 2045 section 6.7). */
function decodeQuotedPrintable(v: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c === "=" && /^[0-9A-Fa-f]{2}$/.test(v.slice(i + 1, i + 3))) { bytes.push(parseInt(v.slice(i + 1, i + 3), 16)); i += 2; continue; }
    for (const b of Buffer.from(c, "utf8")) bytes.push(b);
  }
  return Buffer.from(bytes);
}

function decodeCharset(bytes: Buffer, charset: string | undefined): string {
  const cs = (charset ?? "utf-8").toLowerCase();
  try {
    return new TextDecoder(cs, { fatal: false }).decode(bytes);
  } catch {
    throw new ConnectorError("BAD_REQUEST", `vCard CHARSET '${cs.slice(0, 40)}' is not one this reader knows`);
  }
}

/** 2.1 and 3.0 values escape less than 4.0: a literal text value re-escaped for 4.0 (";" of structured values kept). */
function escape4(text: string, structured: boolean): string {
  const e = text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/,/g, "\\,");
  return structured ? e : e.replace(/;/g, "\\;");
}

const STRUCTURED = new Set(["N", "ADR", "ORG", "GENDER", "CLIENTPIDMAP"]);
const MEDIA: Record<string, string> = { PHOTO: "image", LOGO: "image", SOUND: "audio", KEY: "application" };
const SUBTYPES: Record<string, string> = { jpg: "jpeg", "x-jpeg": "jpeg", tif: "tiff", mpeg4: "mp4", "x-wav": "wav", pgp: "pgp-keys" };
/** TYPE values of 3.0 that say nothing in 4.0 (EMAIL's "internet" is every address). */
const NOISE_TYPES = new Set(["internet", "x400"]);

/** Dates and times to RFC 6350 section 4.3 basic format ("1996-04-15" -> "19960415"). */
function basicDateTime(v: string): string {
  const m = v.trim().match(/^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):?(\d{2}):?(\d{2})?(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?)?$/);
  if (!m) return v.trim();
  const date = `${m[1]}${m[2]}${m[3]}`;
  if (m[4] === undefined) return date;
  return `${date}T${m[4]}${m[5]}${m[6] ?? "00"}${(m[7] ?? "").replace(":", "")}`;
}

/**
 * One card's lines (BEGIN..END included), each in vCard 4.0 form, with the version the card
 * declared. Throws BAD_REQUEST (or PAYLOAD_TOO_LARGE) for what is not one card.
 */
export function readCardLines(text: string): { version: string; lines: ContentLine[] } {
  if (Buffer.byteLength(text) > MAX_VCARD_BYTES) throw new ConnectorError("PAYLOAD_TOO_LARGE", "vCard too large");
  const raws = unfold(text);
  if (raws.length > MAX_LINES) throw new ConnectorError("BAD_REQUEST", "vCard has too many lines");
  const parsed = raws.map((r) => unescapeParams(parseRaw(r)));
  if (parsed[0]?.name !== "BEGIN" || parsed[0].value.trim().toUpperCase() !== "VCARD") throw new ConnectorError("BAD_REQUEST", "not a vCard (no BEGIN:VCARD)");
  const endAt = parsed.findIndex((l, i) => i > 0 && l.name === "END" && l.value.trim().toUpperCase() === "VCARD");
  if (endAt < 0) throw new ConnectorError("BAD_REQUEST", "vCard has no END:VCARD");
  const version = parsed.find((l) => l.name === "VERSION")?.value.trim() ?? "";
  if (!["2.1", "3.0", "4.0"].includes(version)) throw new ConnectorError("BAD_REQUEST", `unsupported vCard version ${version || "(none)"}`);
  const lines: ContentLine[] = [];
  for (const l of parsed.slice(1, endAt)) lines.push(...toVersion4(l, version));
  attachLabels(lines);
  return { version, lines };
}

function toVersion4(l: { group?: string; name: string; params: Record<string, string[]>; value: string }, version: string): ContentLine[] {
  const params = { ...l.params };
  const encoding = params.ENCODING?.[0];
  const charset = params.CHARSET?.[0];
  delete params.ENCODING;
  delete params.CHARSET;
  let value = l.value;
  const name = l.name;
  if (name === "VERSION" || name === "PROFILE") return []; // the writer sets VERSION:4.0; PROFILE:VCARD is boilerplate
  if (encoding === "b" || encoding === "base64") {
    // Inline binary (3.0 ENCODING=b, 2.1 BASE64) -> a data: URI (RFC 6350 section 6.2.4; RFC 2397).
    const kind = MEDIA[name] ?? "application";
    const sub = (params.TYPE ?? []).find((t) => /^[a-z0-9.+-]+$/.test(t) && !["pref", "work", "home"].includes(t));
    delete params.TYPE;
    delete params.VALUE;
    const mediatype = sub ? (sub.includes("/") ? sub : `${kind}/${SUBTYPES[sub] ?? sub}`) : `${kind}/octet-stream`;
    return [{ group: l.group, name, params, value: `data:${mediatype};base64,${value.replace(/\s+/g, "")}` }];
  }
  if (encoding === "quoted-printable") {
    // The bytes are in CHARSET (UTF-8 when none). An unencoded value was decoded with the
    // message (src/formats/storeItem.ts), so CHARSET says nothing more about it.
    const text = normaliseNewlines(decodeCharset(decodeQuotedPrintable(value), charset));
    // 2.1 has no backslash escaping: the decoded text is literal (";" separates components of structured values).
    value = version === "2.1" ? escape4(text, STRUCTURED.has(name)) : text;
  } else if (version === "2.1") {
    value = escape4(value, STRUCTURED.has(name));
  }
  if (params.VALUE?.[0] === "url") params.VALUE = ["uri"];
  // TYPE=pref (3.0, 2.1's bare PREF) is PREF=1 in 4.0 (RFC 6350 section 5.3).
  if (params.TYPE?.includes("pref")) { params.TYPE = params.TYPE.filter((t) => t !== "pref"); if (!params.PREF) params.PREF = ["1"]; }
  if (params.TYPE) { params.TYPE = params.TYPE.filter((t) => !(name === "EMAIL" && NOISE_TYPES.has(t))); if (!params.TYPE.length) delete params.TYPE; }
  switch (name) {
    case "BDAY": case "ANNIVERSARY": case "DEATHDATE": case "REV":
      if (!params.VALUE || params.VALUE[0] !== "text") value = basicDateTime(value);
      break;
    case "GEO": {
      // 3.0 "lat;lon" -> 4.0 geo: URI (RFC 5870).
      const m = value.match(/^\s*(-?[\d.]+)\s*[;,]\s*(-?[\d.]+)\s*$/);
      if (m) value = `geo:${m[1]},${m[2]}`;
      break;
    }
    case "TZ": {
      const m = value.match(/^([+-])(\d{2}):?(\d{2})$/);
      if (m) { value = `${m[1]}${m[2]}${m[3]}`; params.VALUE = ["utc-offset"]; }
      break;
    }
    case "AGENT": {
      // RFC 6350 Appendix A: AGENT -> RELATED;TYPE=agent; an inline card becomes its text.
      return [{ group: l.group, name: "RELATED", params: { ...params, TYPE: ["agent"], VALUE: [/^[a-z][a-z0-9+.-]*:/i.test(value) && !/^BEGIN:VCARD/i.test(value) ? "uri" : "text"] }, value }];
    }
    case "SORT-STRING":
      return [{ group: l.group, name: "X-SORT-STRING", params, value }]; // applied to N as SORT-AS by attachLabels
    case "NAME": case "MAILER": case "CLASS":
      return [{ group: l.group, name: `X-${name}`, params, value }];
  }
  return [{ group: l.group, name, params, value }];
}

/**
 * 3.0's LABEL property is ADR's LABEL parameter in 4.0: attached to the address of the same
 * TYPE, or kept as an address of its own without components. SORT-STRING becomes N's SORT-AS.
 */
function attachLabels(lines: ContentLine[]): void {
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.name === "LABEL") {
      const text = unescapeText(l.value);
      const types = (l.params.TYPE ?? []).filter((t) => t === "home" || t === "work");
      const adr = lines.find((a) => a.name === "ADR" && !a.params.LABEL && (a.params.TYPE ?? []).filter((t) => t === "home" || t === "work").join() === types.join());
      if (adr) { adr.params.LABEL = [text]; lines.splice(i, 1); i--; }
      else lines[i] = { group: l.group, name: "ADR", params: { ...l.params, LABEL: [text] }, value: ";;;;;;" };
    } else if (l.name === "X-SORT-STRING") {
      const n = lines.find((x) => x.name === "N");
      if (n && !n.params["SORT-AS"]) { n.params["SORT-AS"] = [unescapeText(l.value)]; lines.splice(i, 1); i--; }
    }
  }
}

/** RFC 6350 section 3.4 unescaping of a text value. */
export function unescapeText(v: string): string {
  return v.replace(/\\([\\,;nN])/g, (_, c: string) => (c === "n" || c === "N" ? "\n" : c));
}

/** A parameter value, quoted when it must be (RFC 6350 section 5: ":", ";", "," or a quote; ^ escaping of RFC 6868). */
function paramValue(v: string): string {
  const clean = normaliseNewlines(v).replace(/\^/g, "^^").replace(/\n/g, "^n").replace(/"/g, "^'");
  return /[:;,]/.test(clean) ? `"${clean}"` : clean;
}

/** The 4.0 content line text (unfolded). */
export function serializeLine(l: ContentLine): string {
  const params = Object.entries(l.params).filter(([, vs]) => vs.length).map(([k, vs]) => `;${k}=${vs.map(paramValue).join(",")}`).join("");
  return `${l.group ? `${l.group}.` : ""}${l.name}${params}:${l.value}`;
}

/** Reads a 4.0 line written by serializeLine back (RFC 6868 ^-escapes undone). */
export function parseLine4(raw: string): ContentLine {
  return normaliseLine(raw, "4.0");
}

/** Any single line (4.0, or 3.0 as main stored extras) in its 4.0 form. */
export function normaliseLine(raw: string, version = "3.0"): ContentLine {
  const [l] = toVersion4(unescapeParams(parseRaw(raw)), version);
  if (!l) throw new ConnectorError("BAD_REQUEST", "vCard line has no 4.0 form");
  return l;
}

function unescapeParams<T extends { params: Record<string, string[]> }>(p: T): T {
  const params = Object.fromEntries(Object.entries(p.params).map(([k, vs]) => [k, vs.map((v) => v.replace(/\^(\^|n|')/g, (_, c: string) => (c === "n" ? "\n" : c === "'" ? '"' : "^")))]));
  return { ...p, params };
}
