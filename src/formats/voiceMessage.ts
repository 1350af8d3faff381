/**
 * Understanding a message from the voice store: what it is (voice, fax, email, receipt), who
 * called, how long, when, how urgent, how private, and its audio.
 *
 * Signals, strongest first:
 *  - Message-Context (RFC 3458): voice-message, fax-message, ...;
 *  - VPIM (RFC 3801): multipart/voice-message, audio/32kadpcm;
 *  - multipart/report (RFC 6522) with delivery/disposition notifications (RFC 3464, RFC 8098): receipts;
 *  - Asterisk's X-Asterisk-VM-* headers (app_voicemail), an audio/* or image/tiff part.
 * Duration: Content-Duration (RFC 3803) on the audio part or the message; X-Asterisk-VM-Duration.
 * Privacy: Sensitivity (RFC 2156: Private, Company-Confidential). Priority: Importance,
 * Priority (RFC 2156), X-Priority.
 */
import { simpleParser, type Attachment, type HeaderValue } from "mailparser";
import { ConnectorError } from "../errors.js";

export type MessageClass = "voice" | "fax" | "email" | "receipt";

export interface VoiceMessage {
  class: MessageClass;
  subject: string;
  messageId?: string;
  receivedAt?: Date;
  caller: { name?: string; number?: string; address?: string };
  durationSeconds?: number;
  importance: "low" | "normal" | "high";
  sensitivity: "normal" | "private" | "confidential";
  audio?: { name: string; contentType: string; bytes: Buffer };
  fax?: { name: string; contentType: string; bytes: Buffer };
  /** Set on items the connector itself wrote to the store (loop prevention). */
  createdByConnector: boolean;
}

export const MAX_MESSAGE_BYTES = 50 * 1024 * 1024;
/** Audio types Outlook and the voice systems play; anything else is refused with a reason. */
export const SUPPORTED_AUDIO = new Set(["audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/mpeg", "audio/mp3", "audio/mp4", "audio/x-m4a", "audio/ogg", "audio/gsm", "audio/x-gsm", "audio/32kadpcm", "audio/basic", "audio/amr", "audio/wma", "audio/x-ms-wma"]);
export const ORIGIN_HEADER = "x-umc-origin";

function header(headers: Map<string, HeaderValue>, name: string): string | undefined {
  const v = headers.get(name);
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v;
  if (typeof v === "object" && "value" in v && typeof (v as { value: unknown }).value === "string") return (v as { value: string }).value;
  if (typeof v === "object" && "text" in v && typeof (v as { text: unknown }).text === "string") return (v as { text: string }).text;
  return String(v);
}

/** "00:01:05", "65", "1:05" -> seconds. */
function seconds(v: string | undefined): number | undefined {
  if (!v) return undefined;
  const parts = v.trim().split(":").map(Number);
  if (parts.some((p) => !Number.isFinite(p) || p < 0)) return undefined;
  return parts.reduce((acc, p) => acc * 60 + p, 0);
}

export async function parseVoiceMessage(raw: Buffer, options: { internalDate?: Date } = {}): Promise<VoiceMessage> {
  try {
    return await readVoiceMessage(raw, options);
  } catch (e) {
    // Hostile or broken input must never escape as an untyped error.
    if (e instanceof ConnectorError) throw e;
    throw new ConnectorError("MIME_MALFORMED", `message could not be understood: ${(e as Error)?.message?.slice(0, 200) ?? String(e)}`, { cause: e });
  }
}

async function readVoiceMessage(raw: Buffer, options: { internalDate?: Date }): Promise<VoiceMessage> {
  if (raw.length > MAX_MESSAGE_BYTES) throw new ConnectorError("PAYLOAD_TOO_LARGE", `message of ${raw.length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  const headEnd = raw.indexOf("\r\n\r\n") >= 0 ? raw.indexOf("\r\n\r\n") : raw.indexOf("\n\n");
  const head = raw.subarray(0, headEnd < 0 ? Math.min(raw.length, 65536) : headEnd).toString("latin1");
  if (headEnd < 0 || !/^[!-9;-~]+:/m.test(head)) throw new ConnectorError("MIME_MALFORMED", "no RFC 5322 header section");
  if (headEnd > 1024 * 1024) throw new ConnectorError("MIME_MALFORMED", "header section larger than 1 MiB");
  // RFC 2046 section 5.1.1: a multipart body needs its boundary parameter.
  const unfolded = head.replace(/\r?\n[ \t]+/g, " ");
  if (/^content-type:\s*multipart\//im.test(unfolded) && !/^content-type:\s*multipart\/[^\n]*boundary\s*=/im.test(unfolded)) throw new ConnectorError("MIME_MALFORMED", "multipart without a boundary");
  let parsed;
  try {
    parsed = await simpleParser(raw, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true, maxHtmlLengthToParse: 1024 * 1024 });
  } catch (e) {
    throw new ConnectorError("MIME_MALFORMED", `MIME could not be parsed: ${(e as Error).message.slice(0, 200)}`, { cause: e });
  }
  const h = parsed.headers;
  // A truncated part can come back without a content type: treat it as opaque bytes.
  for (const a of parsed.attachments) if (typeof a.contentType !== "string") a.contentType = "application/octet-stream";
  const contentType = (header(h, "content-type") ?? "").toLowerCase();
  const context = (header(h, "message-context") ?? "").trim().toLowerCase();
  const asterisk = h.has("x-asterisk-vm-message-num") || h.has("x-asterisk-vm-duration");
  const audio = parsed.attachments.filter((a) => a.contentType.toLowerCase().startsWith("audio/"));
  const faxPart = parsed.attachments.find((a) => /^(image\/tiff|image\/tif|application\/pdf)$/i.test(a.contentType));

  let cls: MessageClass;
  if (contentType.startsWith("multipart/report") || /delivery-status|disposition-notification/.test(contentType)) cls = "receipt";
  else if (context.startsWith("voice-message") || contentType.startsWith("multipart/voice-message") || asterisk) cls = "voice";
  else if (context.startsWith("fax-message")) cls = "fax";
  else if (audio.length) cls = "voice";
  else if (faxPart && /fax/i.test(parsed.subject ?? "")) cls = "fax";
  else cls = "email";

  const from = parsed.from?.value[0];
  const subject = parsed.subject ?? "";
  const subjectCaller = subject.match(/from\s+(.+?)\s*[(<[]?\s*(\+?[0-9][0-9 ()./-]{2,})[)>\]]?\s*$/i) ?? subject.match(/from\s+(\+?[0-9][0-9 ()./-]{2,})/i);
  const asteriskName = header(h, "x-asterisk-vm-caller-id-name");
  const asteriskNum = header(h, "x-asterisk-vm-caller-id-num");
  const caller = {
    name: asteriskName ?? (from?.name || undefined) ?? (subjectCaller && subjectCaller.length > 2 ? subjectCaller[1]!.trim() : undefined),
    number: asteriskNum ?? (subjectCaller ? subjectCaller[subjectCaller.length - 1]!.replace(/[^0-9+]/g, "") : undefined) ?? (from?.address?.match(/^(\+?\d{3,})@/)?.[1]),
    address: from?.address || undefined,
  };

  const audioPart = audio[0];
  const partDuration = audioPart ? seconds(partHeader(audioPart, "content-duration")) : undefined;
  const durationSeconds = partDuration ?? seconds(header(h, "content-duration")) ?? seconds(header(h, "x-asterisk-vm-duration"));

  const importanceRaw = `${header(h, "importance") ?? ""} ${header(h, "priority") ?? ""} ${header(h, "x-priority") ?? ""}`.toLowerCase();
  const importance = /high|urgent|\b[12]\b/.test(importanceRaw) ? "high" : /low|non-urgent|\b[45]\b/.test(importanceRaw) ? "low" : "normal";
  const sens = (header(h, "sensitivity") ?? "").toLowerCase();
  const sensitivity = /company-confidential|confidential/.test(sens) ? "confidential" : /private|personal/.test(sens) ? "private" : "normal";

  const result: VoiceMessage = {
    class: cls,
    subject,
    messageId: parsed.messageId,
    receivedAt: parsed.date ?? options.internalDate,
    caller,
    durationSeconds,
    importance,
    sensitivity,
    createdByConnector: h.has(ORIGIN_HEADER),
  };
  if (cls === "voice") {
    if (!audioPart && sensitivity === "normal") throw new ConnectorError("AUDIO_MISSING", "voice message without an audio part");
    if (audioPart) {
      const type = audioPart.contentType.toLowerCase();
      if (!SUPPORTED_AUDIO.has(type)) throw new ConnectorError("AUDIO_UNSUPPORTED", `audio type ${type} is not supported`);
      result.audio = { name: audioPart.filename ?? `voicemail.${type.split("/")[1]!.replace(/^x-/, "")}`, contentType: type, bytes: audioPart.content };
    }
  }
  if (cls === "fax" && faxPart) result.fax = { name: faxPart.filename ?? "fax.tif", contentType: faxPart.contentType.toLowerCase(), bytes: faxPart.content };
  return result;
}

function partHeader(a: Attachment, name: string): string | undefined {
  return header(a.headers as Map<string, HeaderValue>, name);
}
