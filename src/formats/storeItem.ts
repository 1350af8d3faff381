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
  let parsed;
  try {
    parsed = await simpleParser(source, { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, maxHtmlLengthToParse: 0 });
  } catch (e) {
    throw new ConnectorError(t.code, `stored ${kind} item is not a readable message`, { cause: e });
  }
  const part = parsed.attachments.find((a) => t.accept.test(a.contentType));
  if (part) return part.content.toString("utf8");
  if (parsed.text && t.begin.test(parsed.text)) return parsed.text;
  throw new ConnectorError(t.code, `stored item holds no ${t.contentType} part`);
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
