/**
 * Contacts and calendar entries on the voice store are plain messages in their folders, one
 * item per message, the way Avaya and Cisco keep them: a text/vcard or text/calendar body
 * (RFC 6350 section 10.1, RFC 5545 section 8.1). The connector writes them with an
 * `X-UMC-Key` header (its sync key) and reads what the store writes in any common shape:
 * the body itself, a MIME part, or a bare vCard/iCalendar file without a header.
 */
import crypto from "node:crypto";
import { simpleParser } from "mailparser";
import { ConnectorError } from "../errors.js";

export type StoreItemKind = "vcard" | "calendar";

const TYPES: Record<StoreItemKind, { contentType: string; accept: RegExp; begin: RegExp; code: "VCARD_MALFORMED" | "ICALENDAR_MALFORMED" }> = {
  vcard: { contentType: "text/vcard", accept: /^text\/(x-)?vcard$|^text\/directory$/i, begin: /^\s*BEGIN:VCARD/i, code: "VCARD_MALFORMED" },
  calendar: { contentType: "text/calendar", accept: /^text\/calendar$/i, begin: /^\s*BEGIN:VCALENDAR/i, code: "ICALENDAR_MALFORMED" },
};

/** The vCard / iCalendar text of a stored item; a typed error when there is none. */
export async function storeItemText(source: Buffer, kind: StoreItemKind): Promise<string> {
  const t = TYPES[kind];
  const head = source.subarray(0, 64).toString("latin1");
  if (t.begin.test(head)) return source.toString("utf8");
  const plain = singlePartBody(source, t.accept);
  if (plain !== undefined) return plain;
  let parsed;
  try {
    parsed = await simpleParser(source, { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, maxHtmlLengthToParse: 0 });
  } catch (e) {
    throw new ConnectorError(t.code, `stored ${kind} item is not a readable message`, { cause: e });
  }
  const part = parsed.attachments.find((a) => t.accept.test(a.contentType));
  if (part) return decodeText(part.content, charsetOf(part.headers.get("content-type")));
  if (parsed.text && t.begin.test(parsed.text)) return parsed.text;
  throw new ConnectorError(t.code, `stored item holds no ${t.contentType} part`);
}

/** Charsets whose bytes read as UTF-8 unchanged (US-ASCII is a subset). */
const UTF8_READABLE = /^(utf-?8|us-ascii)$/i;

/** The charset parameter of a parsed Content-Type header (mailparser's { value, params }). */
function charsetOf(header: unknown): string | undefined {
  const params = (header as { params?: Record<string, string> } | undefined)?.params;
  return params?.charset;
}

/**
 * A text part's bytes in its declared charset (RFC 2046 section 4.1.2): mailparser hands an
 * attachment's bytes over undecoded, and a text/vcard part in ISO-8859-1 read as UTF-8 turned
 * every umlaut into U+FFFD. An unknown charset is read as UTF-8, as before.
 */
function decodeText(bytes: Buffer, charset: string | undefined): string {
  if (!charset || UTF8_READABLE.test(charset)) return bytes.toString("utf8");
  try { return new TextDecoder(charset).decode(bytes); } catch { return bytes.toString("utf8"); }
}

/**
 * The body of a message that is just one text/vcard (or text/calendar) entity with nothing to
 * decode: no multipart, Content-Transfer-Encoding absent or an identity one (7bit, 8bit,
 * binary: RFC 2045 section 6.2), charset absent, UTF-8 or US-ASCII. What stores and the
 * connector itself write, and what a full MIME parse (mailparser, about 0.3 ms and a few
 * hundred objects a card: a 5,000-card first sync spent 1.4 s in it) gives back byte for byte
 * (test/formats/storeItem.test.ts). Anything else (undefined) goes through the MIME parser.
 */
function singlePartBody(source: Buffer, accept: RegExp): string | undefined {
  // The first empty line ends the header (CRLF as RFC 5322 has it, or bare LF as some stores write).
  const crlf = source.indexOf("\r\n\r\n");
  const lf = source.indexOf("\n\n");
  if (crlf < 0 && lf < 0) return undefined;
  const [end, sep] = lf < 0 || (crlf >= 0 && crlf < lf) ? [crlf, 4] : [lf, 2];
  // Header fields, unfolded (RFC 5322 section 2.2.3).
  const fields = source.subarray(0, end).toString("latin1").replace(/\r?\n[ \t]+/g, " ").split(/\r?\n/);
  const field = (name: string) => fields.filter((f) => f.slice(0, name.length + 1).toLowerCase() === `${name}:`).map((f) => f.slice(name.length + 1).trim());
  const types = field("content-type");
  const encodings = field("content-transfer-encoding");
  if (types.length !== 1 || encodings.length > 1) return undefined;
  const [type, ...params] = types[0]!.split(";").map((p) => p.trim());
  if (!accept.test(type ?? "")) return undefined;
  if (encodings.length && !/^(7bit|8bit|binary)$/i.test(encodings[0]!)) return undefined;
  for (const p of params) {
    const m = p.match(/^([^=\s]+)\s*=\s*"?([^"]*)"?$/);
    if (!m) return undefined; // a parameter this reader does not follow: the MIME parser decides
    if (m[1]!.toLowerCase() === "charset" && !UTF8_READABLE.test(m[2]!)) return undefined;
  }
  return source.subarray(end + sep).toString("utf8");
}

function encodeHeader(v: string): string {
  // RFC 2047 encoded-word for non-ASCII display text; control characters never reach a header.
  const clean = v.replace(/[\r\n\t\x00-\x1f\x7f]/g, " ").slice(0, 200);
  return /^[\x20-\x7e]*$/.test(clean) ? clean : `=?UTF-8?B?${Buffer.from(clean, "utf8").toString("base64")}?=`;
}

/** An RFC 5322 message carrying one vCard or iCalendar object. */
export function storeItemMessage(args: { kind: StoreItemKind; key: string; subject: string; body: string; date?: Date }): Buffer {
  const t = TYPES[args.kind];
  const body = args.body.replace(/\r?\n/g, "\r\n");
  const lines = [
    `From: umconnect <umconnect@invalid>`,
    `Date: ${(args.date ?? new Date()).toUTCString().replace("GMT", "+0000")}`,
    `Subject: ${encodeHeader(args.subject)}`,
    `Message-ID: <${crypto.randomUUID()}@umconnect.invalid>`,
    `X-UMC-Key: ${args.key.replace(/[^\x21-\x7e]/g, "")}`,
    `MIME-Version: 1.0`,
    `Content-Type: ${t.contentType}; charset=utf-8`,
    // Folded lines stay under 998 octets (RFC 6350 / 5545 fold at 75), so 8bit needs no encoding.
    `Content-Transfer-Encoding: 8bit`,
  ];
  return Buffer.from(`${lines.join("\r\n")}\r\n\r\n${body}`, "utf8");
}
