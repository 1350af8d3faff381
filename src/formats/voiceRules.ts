/**
 * The decisions about a voice-store message, as precedence tables: who called (name, number),
 * what it is (class), how urgent, how private, how long. Each table is data: rows are tried in
 * order and the first row that yields a credible value decides. Every row names the document
 * that says where a system puts that value; the README in test/fixtures/voice-formats/ shows
 * one real layout per system and the expected decision.
 *
 * Order everywhere: vendor headers > structured fields > subject patterns > body text > From.
 * A value a row yields is checked before it counts: a gateway's display name is never a caller
 * name, "anonymous"/"unknown"/"restricted" ends the search with an unknown caller, a time,
 * a page count or the recipient's own mailbox number is never a caller number.
 */

/** What the rows read: decoded header values, the subject, From, body text and the parts. */
export interface Signals {
  /** The first value of a header, RFC 2047 words decoded, unfolded, trimmed. */
  header(name: string): string | undefined;
  /** The top-level media type, lowercase, without parameters. */
  mediaType: string;
  /** The top-level Content-Type parameters (lowercase names). */
  typeParams: Record<string, string>;
  subject: string;
  from: { name?: string; address?: string };
  /** Local parts of To/Delivered-To: the recipient's own mailbox numbers. */
  recipients: string[];
  /** The first text/plain body (what notification templates write). */
  text: string;
  /** Non-text parts with their role (see voiceParts.ts). */
  parts: Array<{ mediaType: string; role: string; durationHeader?: string }>;
}

export interface Row<T> {
  /** The document (RFC, vendor manual, source file) that defines where this value comes from. */
  source: string;
  read(s: Signals): T | undefined;
}

/** Runs a table: the first row whose value passes `accept` decides; `stop` ends with nothing. */
export function decide<T>(rows: ReadonlyArray<Row<T>>, s: Signals, check: (v: T, s: Signals) => "accept" | "skip" | "stop" = () => "accept"): { value?: T; source?: string } {
  for (const row of rows) {
    let v: T | undefined;
    try { v = row.read(s); } catch { v = undefined; }
    if (v === undefined) continue;
    const verdict = check(v, s);
    if (verdict === "accept") return { value: v, source: row.source };
    if (verdict === "stop") return { source: row.source };
  }
  return {};
}

// ---------------------------------------------------------------------------------------
// Text helpers shared by the rows.

const blank = (v: string | undefined) => (v === undefined || v.trim() === "" ? undefined : v.trim());

/** Phone-number-looking text: digits with the usual separators, optional leading +. */
const NUMBER = String.raw`\+?\d[\d ().\/-]*\d`;

/** Mitel MiVoice Business: From display name "Tom McGuinness at ext.2000". */
const mitelFrom = (s: Signals) => s.from.name?.match(/^(.*?)\s+at\s+ext\.?\s*(\d+)\s*$/i);

/**
 * "... from <who>" in a subject or a notification sentence, cut before the parts that are
 * never the caller: Mitel NuPoint's "MB:<recipient mailbox>", Cisco's "(00:02)" duration,
 * "(1 page)", ", on <date>", " at <time>".
 */
function fromClause(text: string): string | undefined {
  const m = text.match(/\bfrom\s*:?\s+(.+)$/im);
  if (!m) return undefined;
  let who = m[1]!;
  who = who.replace(/\s*\bMB\s*:\s*\d+.*$/i, "");
  who = who.replace(/\s*[,;]\s*(on|at|received)\b.*$/i, "").replace(/\s+on\s+\d.*$/i, "");
  who = who.replace(/\s*[([]\s*\d+\s*pages?\s*[)\]]/ig, "");
  who = who.replace(/\s*[([]\s*\d{1,2}(:\d{2}){1,2}\s*[)\]]/g, "");
  who = who.replace(/\s*[([]\s*\d+\s*(seconds?|secs?|minutes?|mins?|sekunden)\s*[)\]]/ig, "");
  return blank(who);
}

/** Splits "Ann Lee (+49 30 123456)", "\"Bob\" <0151...>", "4085550123", "Ann Lee" into name and number. */
export function splitWho(who: string): { name?: string; number?: string } {
  const w = who.trim();
  const bracketed = w.match(new RegExp(String.raw`^(.*?)\s*[(<\[]\s*(${NUMBER})\s*[)>\]]\s*$`));
  if (bracketed) return { name: cleanName(bracketed[1]!), number: bracketed[2] };
  const trailing = w.match(new RegExp(String.raw`^(.*\S)\s+(${NUMBER})$`));
  if (trailing && /\p{L}/u.test(trailing[1]!)) return { name: cleanName(trailing[1]!), number: trailing[2] };
  if (new RegExp(String.raw`^${NUMBER}$`).test(w)) return { number: w };
  return { name: cleanName(w) };
}

function cleanName(v: string): string | undefined {
  const n = v.replace(/^["'\s]+|["'\s]+$/g, "").replace(/\s+/g, " ");
  return n && /\p{L}/u.test(n) ? n : undefined;
}

const subjectWho = (s: Signals) => { const w = fromClause(s.subject); return w ? splitWho(w) : undefined; };
/**
 * Notification templates that name the caller in the body: Asterisk's default ("... in mailbox
 * 4711 from \"Bob\" <0151...>, on <date>"), FreePBX's and Mitel MiVoice's "From:" line
 * ("From: Tom McGuinness at ext.2000"), and "Caller ID:" lines. Free prose is not read.
 */
function bodyWho(s: Signals): { name?: string; number?: string } | undefined {
  const label = s.text.match(/^\s*(?:from|caller(?:\s*id)?|calling number|anrufer)\s*:\s*(.+)$/im);
  const asterisk = s.text.match(/\bin mailbox \S+ from (.+?), on\b/i);
  const who = (label?.[1] ?? asterisk?.[1])?.trim();
  if (!who) return undefined;
  const mitel = who.match(/^(.*?)\s+at\s+ext\.?\s*(\d+)$/i);
  return mitel ? { name: cleanName(mitel[1]!), number: mitel[2] } : splitWho(who);
}
const localPart = (address: string | undefined) => address?.split("@")[0];
const isVpim = (s: Signals) => s.mediaType === "multipart/voice-message";

// ---------------------------------------------------------------------------------------
// Caller name.

export const CALLER_NAME: ReadonlyArray<Row<string>> = [
  // MS-OXCMAIL 2.2.3.2.23 / MS-OXOUM 2.2.5.6: Exchange UM's caller name header (-> PidTagVoiceMessageSenderName).
  { source: "MS-OXCMAIL 2.2.3.2.23 X-VoiceMessageSenderName", read: (s) => s.header("x-voicemessagesendername") },
  // Asterisk apps/app_voicemail.c make_email_file(): IMAP storage headers.
  { source: "Asterisk app_voicemail.c X-Asterisk-VM-Caller-ID-Name", read: (s) => s.header("x-asterisk-vm-caller-id-name") },
  // Asterisk apps/app_voicemail.c make_email_file(): written on every notification with a caller name.
  { source: "Asterisk app_voicemail.c X-Asterisk-CallerIDName", read: (s) => s.header("x-asterisk-calleridname") },
  // Mitel MiVoice Business Embedded UM: "From: Tom McGuinness at ext.2000 <voicemail@do-not-reply>".
  { source: "Mitel MiVoice Business Embedded UM From \"<name> at ext.<n>\"", read: (s) => mitelFrom(s)?.[1] },
  // RFC 3801 section 4.1.1: in a VPIM message From is the originator (display name = the sender's name).
  { source: "RFC 3801 4.1.1 VPIM From display name", read: (s) => (isVpim(s) ? s.from.name : undefined) },
  // Subjects: Exchange UM "Voice Mail from <name> (<number>)", Mitel NuPoint "Voice Message from <Name/CLID/Mailbox/Unknown Caller> MB:<n>",
  // Cisco Unity Connection "Message from %NAME% %CALLERID%", Mitel "Voicemail from <name>".
  { source: "subject \"... from <name> [(<number>)]\" (Exchange UM, NuPoint, Unity Connection, MiVoice)", read: (s) => subjectWho(s)?.name },
  // Asterisk's default e-mail body ("... from \"Bob\" <0151...>, on ..."), Mitel "From: <name> at ext.<n>", "Caller ID:" lines.
  { source: "body text \"from <name> <number>\" / \"Caller ID:\" (Asterisk template, MiVoice)", read: (s) => bodyWho(s)?.name },
  // RFC 5322 3.6.2: the author's display name, last: voice systems usually put themselves here.
  { source: "RFC 5322 3.6.2 From display name", read: (s) => s.from.name },
];

// ---------------------------------------------------------------------------------------
// Caller number.

export const CALLER_NUMBER: ReadonlyArray<Row<string>> = [
  // MS-OXCMAIL 2.2.3.2.23: Exchange UM's caller number header (-> PidTagSenderTelephoneNumber).
  { source: "MS-OXCMAIL 2.2.3.2.23 X-CallingTelephoneNumber", read: (s) => s.header("x-callingtelephonenumber") },
  // Asterisk apps/app_voicemail.c make_email_file(): IMAP storage headers.
  { source: "Asterisk app_voicemail.c X-Asterisk-VM-Caller-ID-Num", read: (s) => s.header("x-asterisk-vm-caller-id-num") },
  // Asterisk apps/app_voicemail.c make_email_file(): written when the caller's number is known.
  { source: "Asterisk app_voicemail.c X-Asterisk-CallerID", read: (s) => s.header("x-asterisk-callerid") },
  // Mitel MiVoice Business Embedded UM: the extension in "<name> at ext.<n>".
  { source: "Mitel MiVoice Business Embedded UM From \"<name> at ext.<n>\"", read: (s) => mitelFrom(s)?.[2] },
  // RFC 3801 section 4.1.1 / OMTP VVM 1.3 2.1.5: the originator's address is <number>@<domain>.
  { source: "RFC 3801 4.1.1 VPIM From local part", read: (s) => (isVpim(s) ? localPart(s.from.address) : undefined) },
  { source: "subject \"... from [<name>] <number>\" (Exchange UM, NuPoint, Unity Connection)", read: (s) => subjectWho(s)?.number },
  { source: "body text \"from <name> <number>\" / \"Caller ID:\" (Asterisk template, MiVoice)", read: (s) => bodyWho(s)?.number },
  // OMTP Visual Voice Mail Interface Specification v1.3 2.1.5: "From: <phone number of the sender>@<domain>".
  { source: "OMTP VVM 1.3 2.1.5 From <number>@<domain>", read: (s) => localPart(s.from.address) },
];

/** Caller ids that mean "no caller id" (Asterisk writes "an unknown caller"; carriers "anonymous"). */
export const UNKNOWN_CALLER = /^(an?\s+)?(unknown|anonymous|restricted|private|unavailable|withheld|blocked|unidentified|out of area|no caller id)(\s+(caller|number|name))?$/i;

/** Display names of voice systems, gateways and mailers: never a caller's name. */
export const SYSTEM_NAME = /\b(pbx|voice ?mail|voice ?messag\w*|phone ?system|fax ?server|fax|nupoint|unity ?connection|asterisk|freepbx|unified messaging|messaging|microsoft outlook|exchange|mailer-daemon|mailer|mail delivery|postmaster|no-?reply|do-?not-?reply|system|server|gateway|auto ?attendant|visual voicemail)\b/i;

export function checkName(v: string): "accept" | "skip" | "stop" {
  const t = v.trim();
  if (!t) return "skip";
  if (UNKNOWN_CALLER.test(t)) return "stop";
  if (SYSTEM_NAME.test(t) || !/\p{L}/u.test(t) || /@/.test(t)) return "skip";
  return "accept";
}

export function checkNumber(v: string, s: Signals): "accept" | "skip" | "stop" {
  const t = v.trim();
  if (!t) return "skip";
  if (UNKNOWN_CALLER.test(t)) return "stop";
  if (!new RegExp(String.raw`^${NUMBER}$`).test(t) && !/^\d$/.test(t)) return "skip";
  const digits = t.replace(/[^\d]/g, "");
  if (digits.length < 2 || digits.length > 20) return "skip";
  // A clock time or duration ("00:02") is not a number; NUMBER has no ':' so it is already out.
  // The recipient's own mailbox (NuPoint's "MB:4021", the To address) is never the caller.
  if (s.recipients.includes(digits)) return "skip";
  return "accept";
}

/** The number as the system wrote it (the user's words), without "tel:" and extra spaces. */
export const normalizeNumber = (v: string) => v.trim().replace(/^(tel|sip):/i, "").replace(/\s+/g, " ");

// ---------------------------------------------------------------------------------------
// Class.

export type MessageClass = "voice" | "fax" | "email" | "receipt";

export const MESSAGE_CLASS: ReadonlyArray<Row<MessageClass>> = [
  // RFC 6522 multipart/report with RFC 3464 delivery-status or RFC 8098 disposition-notification.
  { source: "RFC 6522 multipart/report", read: (s) => (s.mediaType === "multipart/report" ? "receipt" : undefined) },
  // RFC 3458 section 4: Message-Context names the message's context.
  { source: "RFC 3458 Message-Context", read: (s) => contextClass(s.header("message-context")) },
  // MS-OXCMAIL 2.2.3.2.15 (PidNameContentClass): voice, voice-ca, voice-uc, fax, fax-ca, missedcall.
  { source: "MS-OXCMAIL Content-Class", read: (s) => contentClass(s.header("content-class")) },
  // RFC 3801 section 4.3.1: multipart/voice-message.
  { source: "RFC 3801 4.3.1 multipart/voice-message", read: (s) => (isVpim(s) ? "voice" : undefined) },
  // MS-OXCMAIL 2.2.3.2.23: X-FaxNumberOfPages / X-VoiceMessageDuration; OMTP VVM X-Content-Pages.
  { source: "MS-OXCMAIL 2.2.3.2.23 X-FaxNumberOfPages / OMTP VVM X-Content-Pages", read: (s) => (s.header("x-faxnumberofpages") ?? s.header("x-content-pages") ? "fax" : undefined) },
  { source: "MS-OXCMAIL 2.2.3.2.23 X-VoiceMessageDuration / X-CallingTelephoneNumber", read: (s) => (s.header("x-voicemessageduration") ?? s.header("x-callingtelephonenumber") ? "voice" : undefined) },
  // Asterisk apps/app_voicemail.c make_email_file(): X-Asterisk-VM-* on every voicemail.
  { source: "Asterisk app_voicemail.c X-Asterisk-VM-*", read: (s) => (s.header("x-asterisk-vm-message-num") ?? s.header("x-asterisk-vm-duration") ?? s.header("x-asterisk-callerid") ? "voice" : undefined) },
  // RFC 4239 / RFC 3801 4.3.4: a recording part makes a voice message (spoken names alone do not).
  { source: "RFC 4239 audio part", read: (s) => (s.parts.some((p) => p.mediaType.startsWith("audio/") && p.role !== "spoken-name") ? "voice" : undefined) },
  // RFC 3949 (TIFF-F) / RFC 3250 image/tiff, or a PDF, sent by a fax system.
  { source: "RFC 3949 image/tiff fax / PDF fax", read: (s) => (s.parts.some((p) => /^(image\/tiff|image\/tif|application\/pdf)$/.test(p.mediaType)) && /\bfax\b/i.test(`${s.subject} ${s.from.name ?? ""} ${s.from.address ?? ""}`) ? "fax" : undefined) },
  { source: "RFC 3302 image/tiff; application=faxbw", read: (s) => (s.parts.some((p) => p.mediaType === "image/tiff") && /fax/i.test(s.typeParams["application"] ?? "") ? "fax" : undefined) },
  { source: "RFC 5322 plain mail", read: () => "email" },
];

function contextClass(v: string | undefined): MessageClass | undefined {
  const c = v?.toLowerCase().split(/[;\s]/)[0];
  if (!c) return undefined;
  if (c === "voice-message" || c === "x-voice-infotainment-message") return "voice";
  if (c === "fax-message") return "fax";
  return undefined; // pager-message, multimedia-message, text-message, none: look further
}

function contentClass(v: string | undefined): MessageClass | undefined {
  const c = v?.toLowerCase().trim();
  if (!c) return undefined;
  if (/^voice(-ca|-uc)?$/.test(c)) return "voice";
  if (/^fax(-ca)?$/.test(c)) return "fax";
  return undefined; // missedcall has no recording: plain mail unless other signals say more
}

// ---------------------------------------------------------------------------------------
// Importance.

export type Importance = "low" | "normal" | "high";

export const IMPORTANCE: ReadonlyArray<Row<Importance>> = [
  // Asterisk apps/app_voicemail.c: "X-Asterisk-VM-Flag: Urgent" ("flag added for Urgent").
  { source: "Asterisk app_voicemail.c X-Asterisk-VM-Flag", read: (s) => (/^urgent$/i.test(s.header("x-asterisk-vm-flag") ?? "") ? "high" : undefined) },
  // RFC 2156 5.3.4 / RFC 4021 2.1.51 Importance: high, normal, low (VPIM RFC 3801 4.1.9).
  { source: "RFC 2156 Importance", read: (s) => level(s.header("importance"), { high: "high", normal: "normal", low: "low" }) },
  // RFC 2156 5.3.6 / RFC 4021 2.1.54 Priority: urgent, normal, non-urgent.
  { source: "RFC 2156 Priority", read: (s) => level(s.header("priority"), { urgent: "high", normal: "normal", "non-urgent": "low" }) },
  // De-facto X-Priority (1-2 high, 3 normal, 4-5 low) and X-MSMail-Priority, written by Outlook and Mitel.
  { source: "X-Priority (de-facto, Mitel MiVoice)", read: (s) => { const n = Number((s.header("x-priority") ?? "").trim().charAt(0)); return n >= 1 && n <= 5 ? (n <= 2 ? "high" : n === 3 ? "normal" : "low") : undefined; } },
  { source: "X-MSMail-Priority (de-facto, Mitel MiVoice)", read: (s) => level(s.header("x-msmail-priority"), { high: "high", normal: "normal", low: "low" }) },
  // Asterisk "[PBX]: New Urgent message ...", Cisco Unity Connection %U% ("Urgent") in the subject.
  { source: "subject \"Urgent\" (Asterisk, Unity Connection %U%)", read: (s) => (/\burgent\b/i.test(s.subject) ? "high" : undefined) },
  { source: "default", read: () => "normal" },
];

function level<T>(v: string | undefined, map: Record<string, T>): T | undefined {
  const k = v?.trim().toLowerCase();
  return k !== undefined && k in map ? map[k] : undefined;
}

// ---------------------------------------------------------------------------------------
// Sensitivity.

export type Sensitivity = "normal" | "personal" | "private" | "confidential";

export const SENSITIVITY: ReadonlyArray<Row<Sensitivity>> = [
  // RFC 2156 5.3.5 / RFC 4021 2.1.55 Sensitivity: Personal, Private, Company-Confidential (VPIM RFC 3801 4.1.10: Private).
  { source: "RFC 2156 Sensitivity", read: (s) => level(s.header("sensitivity"), { personal: "personal", private: "private", "company-confidential": "confidential", confidential: "confidential", normal: "normal" }) },
  // Cisco Unity Connection %P% ("Private") and Mitel NuPoint "Confidential" in the subject.
  { source: "subject \"Private\"/\"Confidential\" (Unity Connection %P%, NuPoint)", read: (s) => (/^\s*(\[?\s*private\s*\]?)\s/i.test(s.subject) ? "private" : /^\s*\[?\s*confidential\b/i.test(s.subject) ? "confidential" : undefined) },
  { source: "default", read: () => "normal" },
];

// ---------------------------------------------------------------------------------------
// Duration (from the message; the audio itself is measured after these, then body text).

export const HEADER_DURATION: ReadonlyArray<Row<number>> = [
  // MS-OXCMAIL 2.2.3.2.23: X-VoiceMessageDuration, seconds as a decimal integer.
  { source: "MS-OXCMAIL 2.2.3.2.23 X-VoiceMessageDuration", read: (s) => seconds(s.header("x-voicemessageduration")) },
  // RFC 3803: Content-Duration on the recording part(s), seconds; a forwarded message adds its recordings up.
  { source: "RFC 3803 Content-Duration (recording parts)", read: (s) => sum(s.parts.filter((p) => p.role === "message" || p.role === "forwarded" || p.role === "intro").map((p) => seconds(p.durationHeader))) },
  // Asterisk apps/app_voicemail.c: X-Asterisk-VM-Duration, seconds.
  { source: "Asterisk app_voicemail.c X-Asterisk-VM-Duration", read: (s) => seconds(s.header("x-asterisk-vm-duration")) },
  // RFC 3803 / OMTP VVM 1.3 2.1.5: Content-Duration on the message.
  { source: "RFC 3803 Content-Duration (message)", read: (s) => seconds(s.header("content-duration")) },
];

export const BODY_DURATION: ReadonlyArray<Row<number>> = [
  // Mitel MiVoice Business "Length: 0:04"; "Duration: 1 minute 5 seconds"; "Dauer: 0:42".
  { source: "body \"Length:\"/\"Duration:\" (MiVoice, Exchange UM)", read: (s) => { const m = s.text.match(/^\s*(?:length|duration|dauer|durée|message length)\s*:\s*(.+)$/im); return m ? spokenDuration(m[1]!) : undefined; } },
  // Asterisk's default template: "you were just left a 0:02 long message".
  { source: "Asterisk app_voicemail.c body \"a <m:ss> long message\"", read: (s) => seconds(s.text.match(/\ba\s+(\d+:\d{2}(?::\d{2})?)\s+long message/i)?.[1]) },
  // Cisco Unity Connection %DURATION% in the subject: "(00:02)".
  { source: "subject \"(mm:ss)\" (Unity Connection %DURATION%)", read: (s) => seconds(s.subject.match(/[([]\s*(\d{1,2}:\d{2}(?::\d{2})?)\s*[)\]]/)?.[1]) },
];

/** Longest duration believed from a header: anything longer is a broken header, not a recording. */
export const MAX_CREDIBLE_SECONDS = 6 * 3600;

/** "65", "1:05", "00:01:05", "PT1M5S" -> seconds; anything else undefined. */
export function seconds(v: string | undefined): number | undefined {
  const t = v?.trim();
  if (!t) return undefined;
  let n: number | undefined;
  if (/^\d+(\.\d+)?$/.test(t)) n = Number(t);
  else if (/^\d+(:\d{1,2}){1,2}$/.test(t)) n = t.split(":").map(Number).reduce((a, p) => a * 60 + p, 0);
  return n !== undefined && Number.isFinite(n) && n > 0 && n <= MAX_CREDIBLE_SECONDS ? n : undefined;
}

/** "1 minute 5 seconds", "2 min 3 sec", "45 seconds", "0:42" -> seconds. */
export function spokenDuration(v: string): number | undefined {
  const clock = seconds(v.trim().split(/\s/)[0]);
  if (clock !== undefined && /^\d+(:\d{1,2}){1,2}\b/.test(v.trim())) return clock;
  const h = v.match(/(\d+)\s*(h|hours?|std)\b/i), m = v.match(/(\d+)\s*(m|min|mins|minutes?|minuten?)\b/i), s = v.match(/(\d+)\s*(s|sec|secs|seconds?|sekunden?)\b/i);
  if (!h && !m && !s) return seconds(v.trim());
  const total = Number(h?.[1] ?? 0) * 3600 + Number(m?.[1] ?? 0) * 60 + Number(s?.[1] ?? 0);
  return total > 0 && total <= MAX_CREDIBLE_SECONDS ? total : undefined;
}

function sum(values: Array<number | undefined>): number | undefined {
  const known = values.filter((v): v is number => v !== undefined);
  return known.length ? known.reduce((a, b) => a + b, 0) : undefined;
}
