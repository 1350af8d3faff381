/**
 * E-mail on the phone: what an Exchange message becomes in the voice store, so that the voice
 * system's text-to-speech can read it (issue 22, profile `emailToPhone`).
 *
 * The copy is a plain RFC 5322 message (https://www.rfc-editor.org/rfc/rfc5322) whose body is
 * text/plain: HTML bodies are rendered with html-to-text (a real HTML parser, htmlparser2, not
 * regular expressions); link targets and images are left out because a voice reading a URL is
 * noise. It carries
 *  - `Message-Context: text-message` (RFC 3458 section 2.1.1): the message context voice
 *    systems use to tell e-mail from voice and fax messages;
 *  - `X-UMC-Origin: exchange-mail` (src/formats/voiceMessage.ts ORIGIN_HEADER): written by
 *    umconnect, so the voicemail sync never copies it back to Exchange;
 *  - `X-UMC-Key`: the mail sync's key for the Exchange message (crash recovery finds the copy).
 * Attachments are left out, or kept within the profile's size and type limits; a line says what
 * was left out. A body that cannot be rendered gives the subject and a note, never an error.
 */
import crypto from "node:crypto";
import { compile } from "html-to-text";

export interface MailAddress { name?: string; address?: string }

/** The parts of a Graph message the copy is made from (https://learn.microsoft.com/en-us/graph/api/resources/message). */
export interface GraphMail {
  id: string;
  subject?: string;
  receivedDateTime?: string;
  from?: MailAddress;
  toRecipients?: MailAddress[];
  ccRecipients?: MailAddress[];
  body?: { contentType?: string; content?: string };
  hasAttachments?: boolean;
}

/** An attachment as Graph lists it (fileAttachment; item and reference attachments have no bytes). */
export interface MailAttachment {
  name: string;
  contentType: string;
  size: number;
  /** The content, when it may be kept (fetched only for attachments within the limits). */
  bytes?: Buffer;
  isInline?: boolean;
}

export interface AttachmentRules {
  mode: "omit" | "limit";
  /** Largest total of kept attachments (mode "limit"). */
  maxBytes: number;
  /** MIME types or prefixes ("text/", "application/pdf") that may be kept. */
  types: readonly string[];
}

/** Largest HTML body rendered: beyond it the phone gets the subject and a note (a voice would not read 2 MB of text anyway). */
export const MAX_RENDERED_HTML_CHARS = 2 * 1024 * 1024;
/** Longest text the phone gets; the rest is cut with a note (TTS of a novel helps nobody). */
export const MAX_PHONE_TEXT_CHARS = 64 * 1024;

export const PHONE_COPY_ORIGIN = "exchange-mail";

/** Which attachments the copy keeps (mode "limit": by type and within the total), and which it leaves out. */
export function chooseAttachments(list: readonly MailAttachment[], rules: AttachmentRules): { keep: MailAttachment[]; leftOut: MailAttachment[] } {
  const keep: MailAttachment[] = [];
  const leftOut: MailAttachment[] = [];
  let total = 0;
  for (const a of list) {
    // Inline images belong to the HTML layout, which the text rendition drops.
    if (a.isInline) continue;
    const typeOk = rules.types.some((t) => (t.endsWith("/") ? a.contentType.toLowerCase().startsWith(t.toLowerCase()) : a.contentType.toLowerCase() === t.toLowerCase()));
    if (rules.mode === "limit" && typeOk && total + a.size <= rules.maxBytes) { keep.push(a); total += a.size; }
    else leftOut.push(a);
  }
  return { keep, leftOut };
}

/**
 * The HTML-to-text converter, compiled once (html-to-text's `compile`: the options and selectors
 * are preprocessed into a decision tree, which `convert` would redo for every message).
 */
const toText = compile({
  wordwrap: false,
  // The default limit would cut long bodies silently; the length is checked before.
  limits: { maxInputLength: MAX_RENDERED_HTML_CHARS },
  selectors: [
    { selector: "a", options: { ignoreHref: true } },
    { selector: "img", format: "skip" },
    { selector: "h1", options: { uppercase: false } },
    { selector: "h2", options: { uppercase: false } },
    { selector: "h3", options: { uppercase: false } },
    { selector: "table", format: "dataTable", options: { uppercaseHeaderCells: false } },
  ],
});

/** The attachments this copy would keep: those to download (the caller fetches their bytes). */
export function attachmentsToFetch(list: readonly MailAttachment[], rules: AttachmentRules): MailAttachment[] {
  return chooseAttachments(list, rules).keep;
}

/**
 * The text a voice reads: the body rendered to plain text. Returns `undefined` with a reason when
 * the body cannot be rendered (the caller then sends the subject and a note).
 */
export function bodyText(body: GraphMail["body"]): { text: string; cut: boolean } | { text?: undefined; problem: string } {
  const content = body?.content ?? "";
  const html = (body?.contentType ?? "text").toLowerCase() === "html";
  let text: string;
  if (!html) text = content;
  else {
    if (content.length > MAX_RENDERED_HTML_CHARS) return { problem: `its HTML body is too long to read on the phone (${content.length} characters)` };
    try {
      text = toText(content);
    } catch (e) {
      // html-to-text walks the document recursively: a pathologically nested body overflows the stack.
      return { problem: `its HTML body could not be rendered as text (${(e as Error)?.name ?? "error"})` };
    }
  }
  // Control characters other than line breaks and tabs are nothing a voice can read.
  text = text.replace(/\r\n?/g, "\n").replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, "").replace(/\n{3,}/g, "\n\n").trim();
  if (!text && content.trim()) return { problem: "its body holds no text (only images or layout)" };
  const cut = text.length > MAX_PHONE_TEXT_CHARS;
  return { text: cut ? text.slice(0, MAX_PHONE_TEXT_CHARS) : text, cut };
}

const KB = 1024;
/** "512 bytes", "34 KB", "1.2 MB": sizes as a voice reads them. */
export function sizeText(n: number): string {
  if (n < KB) return `${n} bytes`;
  if (n < KB * KB) return `${Math.round(n / KB)} KB`;
  return `${(n / KB / KB).toFixed(1)} MB`;
}

const who = (a?: MailAddress) => (a?.name && a.address ? `${a.name} <${a.address}>` : a?.name ?? a?.address ?? "an unknown sender");

/** RFC 2047 encoded words (B encoding, at most 75 characters each) for non-ASCII header text. */
export function encodeHeaderText(v: string): string {
  const clean = v.replace(/[\r\n\t\x00-\x1f\x7f]+/g, " ").slice(0, 500);
  if (/^[\x20-\x7e]*$/.test(clean)) return clean;
  const words: string[] = [];
  let chunk = "";
  // 45 bytes of UTF-8 encode to 60 base64 characters: "=?UTF-8?B?" + 60 + "?=" = 72 (section 2).
  for (const ch of clean) {
    if (Buffer.byteLength(chunk + ch, "utf8") > 45) { words.push(chunk); chunk = ""; }
    chunk += ch;
  }
  if (chunk) words.push(chunk);
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w, "utf8").toString("base64")}?=`).join("\r\n ");
}

/** An address for a header: `"Name" <addr>`, with the name encoded when it is not ASCII (RFC 5322 section 3.4). */
function addressHeader(a?: MailAddress): string {
  const address = (a?.address ?? "").replace(/[^\x21-\x7e]/g, "");
  const name = a?.name?.trim();
  if (!address) return name ? `${encodeHeaderText(name)} :;` : "undisclosed-recipients:;";
  if (!name || name === address) return `<${address}>`;
  return /^[\x20-\x7e]*$/.test(name) ? `"${name.replace(/["\\]/g, "")}" <${address}>` : `${encodeHeaderText(name)} <${address}>`;
}

/** RFC 5322 date-time ("Mon, 30 Nov 2026 19:54:04 +0000"). */
const rfc5322Date = (d: Date) => d.toUTCString().replace("GMT", "+0000");

const base64Lines = (b: Buffer) => (b.toString("base64").match(/.{1,76}/g) ?? []).join("\r\n");

export interface PhoneCopy {
  /** The RFC 5322 message to APPEND. */
  source: Buffer;
  /** The text the phone reads (tests, logs of sizes only). */
  text: string;
  /** Attachments named in the "left out" line. */
  leftOut: MailAttachment[];
  /** Set when the body could not be rendered (the copy says so). */
  unrenderable?: string;
}

/**
 * The voice-store message for an Exchange message. `attachments` lists the message's
 * attachments; the kept ones (chooseAttachments) must carry their bytes.
 */
export function toPhoneMessage(mail: GraphMail, opts: { key: string; to?: MailAddress; attachments?: readonly MailAttachment[]; rules: AttachmentRules }): PhoneCopy {
  const received = mail.receivedDateTime && Number.isFinite(Date.parse(mail.receivedDateTime)) ? new Date(mail.receivedDateTime) : new Date();
  const subject = mail.subject?.trim() || "(no subject)";
  const rendered = bodyText(mail.body);
  const { keep, leftOut } = chooseAttachments(opts.attachments ?? [], opts.rules);
  const kept = keep.filter((a) => a.bytes !== undefined);
  // A kept attachment whose bytes did not come is named as left out rather than lost silently.
  leftOut.push(...keep.filter((a) => a.bytes === undefined));

  const stop = (t: string) => (/[.!?]$/.test(t) ? t : `${t}.`);
  const lines: string[] = [`E-mail from ${who(mail.from)}.`, `Subject: ${stop(subject)}`, ""];
  let unrenderable: string | undefined;
  if (rendered.text !== undefined) {
    lines.push(rendered.text || "(This e-mail has no text.)");
    if (rendered.cut) lines.push("", "(The rest of this e-mail is too long for the phone; read it in Outlook.)");
  } else {
    unrenderable = rendered.problem;
    lines.push(`(This e-mail could not be read on the phone: ${rendered.problem}. Read it in Outlook.)`);
  }
  if (leftOut.length) lines.push("", `Attachments left out: ${leftOut.map((a) => `${a.name} (${sizeText(a.size)})`).join(", ")}.`);
  if (kept.length) lines.push("", `Attached: ${kept.map((a) => a.name).join(", ")}.`);
  const text = lines.join("\n");

  const key = opts.key.replace(/[^\x21-\x7e]/g, "");
  const headers = [
    `From: ${addressHeader(mail.from)}`,
    ...(opts.to?.address ? [`To: ${addressHeader(opts.to)}`] : []),
    `Subject: ${encodeHeaderText(subject)}`,
    `Date: ${rfc5322Date(received)}`,
    // Derived from the key: the same Exchange message always makes the same Message-ID.
    `Message-ID: <${crypto.createHash("sha256").update(key).digest("hex").slice(0, 32)}@umconnect.invalid>`,
    "Message-Context: text-message",
    `X-UMC-Origin: ${PHONE_COPY_ORIGIN}`,
    `X-UMC-Key: ${key}`,
    "MIME-Version: 1.0",
  ];
  const textPart = ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64", "", base64Lines(Buffer.from(text.replace(/\n/g, "\r\n"), "utf8"))];
  let body: string;
  if (!kept.length) body = [...headers, ...textPart].join("\r\n");
  else {
    const boundary = `umc-${crypto.randomBytes(12).toString("hex")}`;
    const parts = kept.map((a) => {
      const name = encodeHeaderText(a.name.replace(/["\\]/g, "_"));
      const type = /^[a-z0-9.+-]+\/[a-z0-9.+-]+$/i.test(a.contentType) ? a.contentType : "application/octet-stream";
      return [`Content-Type: ${type}; name="${name}"`, `Content-Disposition: attachment; filename="${name}"`, "Content-Transfer-Encoding: base64", "", base64Lines(a.bytes!)].join("\r\n");
    });
    body = [...headers, `Content-Type: multipart/mixed; boundary="${boundary}"`, "", `--${boundary}`, textPart.join("\r\n"), ...parts.map((p) => `--${boundary}\r\n${p}`), `--${boundary}--`, ""].join("\r\n");
  }
  return { source: Buffer.from(body, "utf8"), text, leftOut, unrenderable };
}
