/**
 * Understanding a message from the voice store: what it is (voice, fax, email, receipt), who
 * called, how long, when, how urgent, how private, and its recordings.
 *
 * The decisions are the precedence tables in voiceRules.ts; this module gathers the signals
 * they read (headers decoded, subject, From, body text, parts with their roles) and picks the
 * recordings:
 *  - VPIM (RFC 3801 4.3.4, RFC 4239 section 3): Content-Disposition `voice=` names each audio
 *    part's role; Voice-Message is the recording, Originator-Spoken-Name / Recipient-Spoken-Name /
 *    Spoken-Subject / Voice-Message-Notification are never attached as the message;
 *  - a forwarded message (RFC 3801 4.3.3: message/rfc822 inside the forward) keeps every
 *    recording in play order: the forwarder's introduction, then the original's recordings; a
 *    forward without an introduction is its original's recordings;
 *  - Asterisk (app_voicemail.c make_email_file) attaches msgNNNN.<fmt> and, for a forward with
 *    a spoken comment, msgintroNNNN.<fmt>: the introduction plays first;
 *  - otherwise every audio part is a recording, in part order.
 */
import { simpleParser, type Attachment, type HeaderValue, type ParsedMail } from "mailparser";
import { ConnectorError } from "../errors.js";
import { sniffAudio } from "./audioFormat.js";
import { faxPageCount } from "./faxPages.js";
import {
  BODY_DURATION, CALLER_NAME, CALLER_NUMBER, HEADER_DURATION, IMPORTANCE, MESSAGE_CLASS, SENSITIVITY,
  checkName, checkNumber, decide, normalizeNumber, seconds,
  type Importance, type MessageClass, type Sensitivity, type Signals,
} from "./voiceRules.js";

export type { MessageClass } from "./voiceRules.js";

export interface Recording {
  name: string;
  contentType: string;
  bytes: Buffer;
  /** "intro": the forwarder's comment; "message": the recording; "forwarded": a forwarded original's recording. */
  role: "intro" | "message" | "forwarded";
  /** Length the audio container itself states (WAV data size / byte rate), when it does. */
  containerSeconds?: number;
}

export interface VoiceMessage {
  class: MessageClass;
  subject: string;
  messageId?: string;
  receivedAt?: Date;
  caller: { name?: string; number?: string; address?: string };
  /** The voice system's call identifier (MS-OXCMAIL X-CallID -> PidTagCallId). */
  callId?: string;
  /** From a header (HEADER_DURATION); see messageDuration() for the full precedence. */
  durationSeconds?: number;
  /** Written in the notification text ("Length: 0:04"): the last resort. */
  bodyDurationSeconds?: number;
  importance: Importance;
  sensitivity: Sensitivity;
  /** Recordings in play order (PidTagVoiceMessageAttachmentOrder). */
  recordings: Recording[];
  fax?: { name: string; contentType: string; bytes: Buffer; pages?: number };
  /** Receipts: RFC 3464 delivery status (delivery/non-delivery) or RFC 8098 disposition (read). */
  report?: "delivery" | "read";
  /** The plain-text body (at most 16 KB), shown for receipts and e-mail. */
  text: string;
  /** Which table row decided each value (for the corpus tests and support). */
  decidedBy: Partial<Record<"name" | "number" | "class" | "duration" | "importance" | "sensitivity", string>>;
  /** Set on items the connector itself wrote to the store (loop prevention). */
  createdByConnector: boolean;
  /** Every address in From, To, Cc and Reply-To, lower case (loop prevention by domain). */
  addresses: string[];
}

export const MAX_MESSAGE_BYTES = 50 * 1024 * 1024;
export const ORIGIN_HEADER = "x-umc-origin";
/** Forwards of forwards: deeper nesting is not followed (hostile input). */
const MAX_FORWARD_DEPTH = 4;

/**
 * The recording's length by precedence: a header, then the audio itself (measured while
 * transcoding, else what the containers state), then the notification text.
 */
export function messageDuration(m: VoiceMessage, measured: Array<number | undefined> = []): { seconds?: number; source?: string } {
  if (m.durationSeconds !== undefined) return { seconds: m.durationSeconds, source: m.decidedBy.duration };
  const all = (xs: Array<number | undefined>) => (xs.length && xs.every((x) => x !== undefined) ? xs.reduce((a: number, x) => a + x!, 0) : undefined);
  const fromAudio = all(measured) ?? all(m.recordings.map((r) => r.containerSeconds));
  if (fromAudio !== undefined && fromAudio > 0) return { seconds: fromAudio, source: "audio" };
  if (m.bodyDurationSeconds !== undefined) return { seconds: m.bodyDurationSeconds, source: m.decidedBy.duration };
  return {};
}

export const isSecure = (m: Pick<VoiceMessage, "sensitivity">) => m.sensitivity === "private" || m.sensitivity === "confidential";

export async function parseVoiceMessage(raw: Buffer, options: { internalDate?: Date } = {}): Promise<VoiceMessage> {
  try {
    return await readVoiceMessage(raw, options);
  } catch (e) {
    // Hostile or broken input must never escape as an untyped error.
    if (e instanceof ConnectorError) throw e;
    throw new ConnectorError("MIME_MALFORMED", `message could not be understood: ${(e as Error)?.message?.slice(0, 200) ?? String(e)}`, { cause: e });
  }
}

function checkHead(raw: Buffer): void {
  if (raw.length > MAX_MESSAGE_BYTES) throw new ConnectorError("PAYLOAD_TOO_LARGE", `message of ${raw.length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  const crlf = raw.indexOf("\r\n\r\n"), lf = raw.indexOf("\n\n");
  const headEnd = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf : lf;
  const head = raw.subarray(0, headEnd < 0 ? Math.min(raw.length, 65536) : headEnd).toString("latin1");
  if (headEnd < 0 || !/^[!-9;-~]+:/m.test(head)) throw new ConnectorError("MIME_MALFORMED", "no RFC 5322 header section");
  if (headEnd > 1024 * 1024) throw new ConnectorError("MIME_MALFORMED", "header section larger than 1 MiB");
  // RFC 2046 section 5.1.1: a multipart body needs its boundary parameter.
  const unfolded = head.replace(/\r?\n[ \t]+/g, " ");
  if (/^content-type:\s*multipart\//im.test(unfolded) && !/^content-type:\s*multipart\/[^\n]*boundary\s*=/im.test(unfolded)) throw new ConnectorError("MIME_MALFORMED", "multipart without a boundary");
}

async function parse(raw: Buffer): Promise<ParsedMail> {
  checkHead(raw);
  try {
    const parsed = await simpleParser(raw, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true, maxHtmlLengthToParse: 1024 * 1024 });
    // A truncated part can come back without a content type: treat it as opaque bytes.
    for (const a of parsed.attachments) if (typeof a.contentType !== "string") a.contentType = "application/octet-stream";
    return parsed;
  } catch (e) {
    throw new ConnectorError("MIME_MALFORMED", `MIME could not be parsed: ${(e as Error).message.slice(0, 200)}`, { cause: e });
  }
}

async function readVoiceMessage(raw: Buffer, options: { internalDate?: Date }): Promise<VoiceMessage> {
  const parsed = await parse(raw);
  const headers = rawHeaders(parsed);
  const top = parsed.headers.get("content-type") as { value?: string; params?: Record<string, string> } | undefined;
  const from = parsed.from?.value[0];
  const parts = await collectParts(parsed, 0);
  const signals: Signals = {
    header: (name) => headers.get(name),
    mediaType: (top?.value ?? "text/plain").toLowerCase(),
    typeParams: Object.fromEntries(Object.entries(top?.params ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)])),
    subject: parsed.subject ?? "",
    from: { name: from?.name || undefined, address: from?.address || undefined },
    recipients: recipients(parsed, headers),
    text: (parsed.text ?? "").slice(0, 64 * 1024),
    parts: parts.map((p) => ({ mediaType: p.mediaType, role: p.role, durationHeader: p.durationHeader })),
  };

  const cls = decide(MESSAGE_CLASS, signals);
  const name = decide(CALLER_NAME, signals, checkName);
  const number = decide(CALLER_NUMBER, signals, checkNumber);
  const importance = decide(IMPORTANCE, signals);
  const sensitivity = decide(SENSITIVITY, signals);
  const headerDuration = decide(HEADER_DURATION, signals);
  const bodyDuration = decide(BODY_DURATION, signals);

  const result: VoiceMessage = {
    class: cls.value!,
    subject: parsed.subject ?? "",
    messageId: parsed.messageId,
    receivedAt: parsed.date ?? options.internalDate,
    // A caller exists for calls (voice, fax); a receipt or an e-mail has a sender address only.
    caller: cls.value === "voice" || cls.value === "fax"
      ? { name: name.value?.trim(), number: number.value === undefined ? undefined : normalizeNumber(number.value), address: from?.address || undefined }
      : { name: cls.value === "email" ? from?.name || undefined : undefined, address: from?.address || undefined },
    callId: headers.get("x-callid") || undefined,
    durationSeconds: headerDuration.value,
    bodyDurationSeconds: bodyDuration.value,
    importance: importance.value!,
    sensitivity: sensitivity.value!,
    recordings: [],
    text: (parsed.text ?? "").slice(0, 16 * 1024),
    decidedBy: { class: cls.source, name: name.source, number: number.source, duration: headerDuration.source ?? bodyDuration.source, importance: importance.source, sensitivity: sensitivity.source },
    createdByConnector: headers.has(ORIGIN_HEADER),
    addresses: [parsed.from, parsed.to, parsed.cc, parsed.replyTo].flatMap((a) => (a === undefined ? [] : Array.isArray(a) ? a : [a]))
      .flatMap((a) => a.value).flatMap(function flat(v): string[] { return [...(v.address ? [v.address.toLowerCase()] : []), ...(v.group ?? []).flatMap(flat)]; }),
  };

  if (result.class === "voice") {
    result.recordings = recordingsInPlayOrder(parts);
    for (const r of result.recordings) {
      const info = sniffAudio(r.bytes, r.contentType);
      if (info.container === "unknown") throw new ConnectorError("AUDIO_UNSUPPORTED", `recording ${r.name} (${r.contentType}) is in no audio format the connector can read`);
      r.containerSeconds = info.durationSeconds;
    }
    if (!result.recordings.length && !isSecure(result)) {
      const spoken = parts.some((p) => p.role === "spoken-name" || p.role === "spoken-subject");
      throw new ConnectorError("AUDIO_MISSING", spoken ? "voice message holds only a spoken name or subject, no recording" : "voice message without an audio part");
    }
  }
  if (result.class === "receipt") result.report = /disposition/i.test(signals.typeParams["report-type"] ?? "") ? "read" : "delivery";
  if (result.class === "fax") {
    const doc = parts.find((p) => /^(image\/tiff|image\/tif|application\/pdf)$/.test(p.mediaType));
    if (doc) {
      const declared = seconds(headers.get("x-faxnumberofpages") ?? headers.get("x-content-pages"));
      result.fax = { name: doc.name, contentType: doc.mediaType, bytes: doc.bytes, pages: declared ?? faxPageCount(doc.bytes, doc.mediaType) };
    }
  }
  return result;
}

interface Part {
  mediaType: string;
  name: string;
  bytes: Buffer;
  role: "message" | "intro" | "forwarded" | "spoken-name" | "spoken-subject" | "notification" | "other";
  durationHeader?: string;
  depth: number;
  /** Asterisk's msgintroNNNN file of a forward with a comment. */
  asteriskIntro: boolean;
}

/** RFC 3801 4.3.4 / RFC 4239 section 3: the Content-Disposition `voice` parameter. */
const VOICE_ROLES: Record<string, Part["role"]> = {
  "voice-message": "message",
  "originator-spoken-name": "spoken-name",
  "recipient-spoken-name": "spoken-name",
  "spoken-subject": "spoken-subject",
  "voice-message-notification": "notification",
};

const AUDIO_BY_EXTENSION: Record<string, string> = { wav: "audio/wav", mp3: "audio/mpeg", gsm: "audio/x-gsm", amr: "audio/amr", "726": "audio/32kadpcm", au: "audio/basic" };

async function collectParts(parsed: ParsedMail, depth: number): Promise<Part[]> {
  const out: Part[] = [];
  for (const a of parsed.attachments) {
    const mediaType = a.contentType.toLowerCase();
    if (mediaType === "message/rfc822") {
      // RFC 3801 4.3.3: a forwarded voice message travels as message/rfc822.
      if (depth >= MAX_FORWARD_DEPTH) continue;
      let inner: ParsedMail;
      try { inner = await parse(a.content); } catch { continue; }
      for (const p of await collectParts(inner, depth + 1)) out.push(p.role === "message" || p.role === "intro" ? { ...p, role: "forwarded" } : p);
      continue;
    }
    const disposition = partHeader(a, "content-disposition") as { params?: Record<string, string> } | undefined;
    const voice = (disposition?.params?.voice ?? "").toLowerCase();
    const name = a.filename ?? `voicemail.${(mediaType.split("/")[1] ?? "bin").replace(/^x-/, "")}`;
    // Some systems label a recording application/octet-stream: its file name tells.
    const byName = mediaType === "application/octet-stream" ? AUDIO_BY_EXTENSION[(name.split(".").pop() ?? "").toLowerCase()] : undefined;
    const type = byName ?? mediaType;
    const role: Part["role"] = !type.startsWith("audio/") ? "other" : voice ? (VOICE_ROLES[voice] ?? "other") : "message";
    out.push({ mediaType: type, name, bytes: a.content, role, depth, durationHeader: stringHeader(a, "content-duration"), asteriskIntro: /^msgintro\d+\./i.test(name) });
  }
  return out;
}

function recordingsInPlayOrder(parts: Part[]): Recording[] {
  const own = parts.filter((p) => p.depth === 0 && p.role === "message");
  const forwarded = parts.filter((p) => p.role === "forwarded");
  const asIntro = (p: Part): Recording => ({ name: p.name, contentType: p.mediaType, bytes: p.bytes, role: "intro" });
  const asIs = (p: Part, role: Recording["role"]): Recording => ({ name: p.name, contentType: p.mediaType, bytes: p.bytes, role });
  if (forwarded.length) return [...own.map(asIntro), ...forwarded.map((p) => asIs(p, "forwarded"))];
  const intros = own.filter((p) => p.asteriskIntro);
  if (intros.length && intros.length < own.length) return [...intros.map(asIntro), ...own.filter((p) => !p.asteriskIntro).map((p) => asIs(p, "message"))];
  return own.map((p) => asIs(p, "message"));
}

/** The recipient's own mailbox numbers: local parts of To and Delivered-To (never the caller). */
function recipients(parsed: ParsedMail, headers: Map<string, string>): string[] {
  const to = (Array.isArray(parsed.to) ? parsed.to : parsed.to ? [parsed.to] : []).flatMap((t) => t.value.map((v) => v.address ?? v.name ?? ""));
  const more = [headers.get("delivered-to") ?? "", headers.get("x-asterisk-vm-extension") ?? "", ...(parsed.subject?.match(/\bMB\s*:\s*(\d+)/gi) ?? []).map((m) => m.replace(/\D/g, ""))];
  return [...to, ...more].map((a) => a.split("@")[0]!.replace(/[^\d]/g, "")).filter((d) => d.length > 0);
}

/** Every header by lowercase name: first occurrence, unfolded, RFC 2047 words decoded. */
function rawHeaders(parsed: ParsedMail): Map<string, string> {
  const map = new Map<string, string>();
  for (const { key, line } of parsed.headerLines) {
    if (map.has(key)) continue;
    const value = line.slice(line.indexOf(":") + 1).replace(/\r?\n[ \t]+/g, " ").trim();
    map.set(key, decodeWords(value));
  }
  return map;
}

/** RFC 2047 encoded words (B and Q); unknown charsets are read as UTF-8. */
export function decodeWords(v: string): string {
  return v.replace(/\?=\s+=\?/g, "?==?").replace(/=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g, (_, charset: string, enc: string, text: string) => {
    const bytes = enc.toUpperCase() === "B" ? Buffer.from(text, "base64") : Buffer.from(text.replace(/_/g, " ").replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), "latin1");
    try { return new TextDecoder(charset.split("*")[0]!.toLowerCase()).decode(bytes); } catch { return bytes.toString("utf8"); }
  });
}

function partHeader(a: Attachment, name: string): HeaderValue | undefined {
  return (a.headers as Map<string, HeaderValue>).get(name);
}

function stringHeader(a: Attachment, name: string): string | undefined {
  const v = partHeader(a, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v;
  if (typeof v === "object" && "value" in v && typeof (v as { value: unknown }).value === "string") return (v as { value: string }).value;
  return String(v);
}
