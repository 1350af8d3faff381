/**
 * What a voice-store message becomes in Exchange: the voicemail item's subject, body, class,
 * caller, duration and attachments, by the profile's rules (DESIGN.md section 1):
 *  - voice -> IPM.Note.Microsoft.Voicemail.UM.CA (MS-OXCMAIL: Content-Class voice-ca), fax ->
 *    IPM.Note.Microsoft.Fax.CA; the playable recordings (in play order) or the fax attached;
 *  - secure/private voice messages: no audio, a "listen by phone" notice;
 *  - receipts and plain mail only when the profile copies them, with a body that says what
 *    they are; never what we wrote ourselves.
 * Subject and body are written for the user: "Voice message from Ann Lee (+49 30 123456), 0:42".
 */
import type { FeatureProfile } from "../admin/profiles.js";
import type { VoicemailItem } from "../graph/voicemail.js";
import { isSecure, messageDuration, type VoiceMessage } from "../formats/voiceMessage.js";

export const VOICEMAIL_CLASS = "IPM.Note.Microsoft.Voicemail.UM.CA";
export const FAX_CLASS = "IPM.Note.Microsoft.Fax.CA";

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export type CopyDecision = { copy: true } | { copy: false; code: string; message: string };

export function decideCopy(m: VoiceMessage, profile: FeatureProfile): CopyDecision {
  if (m.createdByConnector) return { copy: false, code: "LOOP_PREVENTED", message: "written by umconnect" };
  if (m.class === "voice" && !profile.copy.voice) return { copy: false, code: "NOT_COPIED_BY_PROFILE", message: "voice messages are not copied" };
  if (m.class === "fax" && !profile.copy.fax) return { copy: false, code: "NOT_COPIED_BY_PROFILE", message: "faxes are not copied" };
  if (m.class === "receipt" && !profile.copy.receipts) return { copy: false, code: "NOT_COPIED_BY_PROFILE", message: "receipts are not copied" };
  if (m.class === "email" && !profile.copy.email) return { copy: false, code: "NOT_COPIED_BY_PROFILE", message: "email is not copied" };
  if (isSecure(m) && profile.secureMessages === "skip") return { copy: false, code: "NOT_COPIED_BY_PROFILE", message: "secure messages are not copied" };
  // Mail that the voice system's own domain sent, or that is addressed back to it (To, Cc,
  // Reply-To), is its own traffic bouncing around: never copied back.
  const own = ownDomainAddress(m.addresses, profile.loopPreventionDomain);
  if (own && m.class === "email") return { copy: false, code: "LOOP_PREVENTED", message: `addressed to or from the voice system's own domain (${own})` };
  return { copy: true };
}

/**
 * The first address (From, To, Cc, Reply-To) in the voice system's own domain, if any: mail
 * from or to it is the voice system's own traffic. Used both ways: store -> Exchange (above) and
 * Exchange -> store (src/sync/mailPlanner.ts: a reply from the voice domain is not re-imported).
 */
export function ownDomainAddress(addresses: readonly string[], loopPreventionDomain: string | undefined): string | undefined {
  const domain = loopPreventionDomain?.toLowerCase().replace(/^@/, "");
  return domain ? addresses.map((a) => a.toLowerCase()).find((a) => a.endsWith("@" + domain)) : undefined;
}

/** 42 -> "0:42", 3725 -> "1:02:05" (h:mm:ss from an hour on). */
export function formatDuration(total: number): string {
  const s = Math.max(0, Math.round(total));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const two = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(sec)}` : `${m}:${two(sec)}`;
}

/** "Ann Lee (+49 30 123456)", "Ann Lee", "+49 30 123456" or "an unknown caller". */
export function callerText(c: VoiceMessage["caller"]): string {
  if (c.name && c.number) return `${c.name} (${c.number})`;
  return c.name ?? c.number ?? "an unknown caller";
}

/** A recording ready for Exchange (transcoded, or the original when it already plays). */
export interface PlayableRecording { name: string; contentType: string; bytes: Buffer; durationSeconds?: number }

/**
 * The Exchange item for a message. `recordings` are the playable recordings in play order
 * (transcode.ts); omitted, the message's own recordings are attached as they are.
 */
export function toVoicemailItem(m: VoiceMessage, syncKey: string, seen: boolean, recordings: PlayableRecording[] = m.recordings): VoicemailItem {
  const secure = isSecure(m);
  const who = callerText(m.caller);
  const base = { syncKey, isRead: seen, receivedAt: m.receivedAt, caller: m.caller, importance: m.importance, sensitivity: m.sensitivity, callId: m.callId };
  const page = (body: string[]) => `<html><body>${body.join("")}</body></html>`;

  if (m.class === "voice") {
    const duration = messageDuration(m, recordings.map((r) => r.durationSeconds)).seconds;
    const headline = `Voice message from ${who}${duration !== undefined ? `, ${formatDuration(duration)}` : ""}`;
    const attachments = secure ? [] : uniqueNames(recordings);
    const body = [`<p>${esc(headline)}.</p>`];
    if (secure) body.push(`<p><strong>This message is ${m.sensitivity === "confidential" ? "confidential" : "private"}.</strong> Its audio stays on the voice mail system: call your voice mailbox to listen to it.</p>`);
    else if (attachments.length === 1) body.push("<p>The recording is attached.</p>");
    else body.push(`<p>The ${attachments.length} recordings are attached; play them in this order: ${attachments.map((a) => esc(a.name)).join(", ")}.</p>`);
    return {
      ...base, subject: headline, bodyHtml: page(body), messageClass: VOICEMAIL_CLASS, durationSeconds: duration,
      attachments, attachmentOrder: attachments.length ? attachments.map((a) => a.name) : undefined,
    };
  }
  if (m.class === "fax") {
    const pages = m.fax?.pages;
    const headline = `Fax from ${who}${pages !== undefined ? `, ${pages} ${pages === 1 ? "page" : "pages"}` : ""}`;
    const attachments = m.fax && !secure ? [{ name: m.fax.name, contentType: m.fax.contentType, bytes: m.fax.bytes }] : [];
    const note = secure ? "<p><strong>This fax is private.</strong> It stays on the voice mail system.</p>"
      : attachments.length ? "<p>The fax is attached.</p>" : "<p>The message held no fax document; the original stays on the voice mail system.</p>";
    return { ...base, subject: headline, bodyHtml: page([`<p>${esc(headline)}.</p>`, note]), messageClass: FAX_CLASS, faxPages: pages, attachments };
  }
  // Receipts and e-mail: what they are, and their own text; nothing is attached.
  const what = m.class === "receipt"
    ? (m.report === "read" ? "A read receipt from the voice mail system for a message you sent." : "A delivery report from the voice mail system about a message you sent.")
    : `An e-mail from ${m.caller.name ?? m.caller.address ?? "the voice mail system"}, copied from your voice mailbox.`;
  const text = m.text.trim();
  return {
    ...base, caller: m.class === "email" ? { name: m.caller.name, address: m.caller.address } : undefined, subject: m.subject || (m.class === "receipt" ? "Delivery report" : "(no subject)"), messageClass: "IPM.Note", attachments: [],
    bodyHtml: page([`<p>${esc(what)}</p>`, ...(text ? [`<pre>${esc(text)}</pre>`] : [])]),
  };
}

/** Attachment names must differ: the attachment order lists them by name (MS-OXOUM 2.2.5.4). */
function uniqueNames(recs: PlayableRecording[]): Array<{ name: string; contentType: string; bytes: Buffer }> {
  const used = new Set<string>();
  return recs.map((r) => {
    let name = r.name.replace(/;/g, "_");
    for (let i = 2; used.has(name.toLowerCase()); i++) name = r.name.replace(/;/g, "_").replace(/(\.[^.]+)?$/, `-${i}$1`);
    used.add(name.toLowerCase());
    return { name, contentType: r.contentType, bytes: r.bytes };
  });
}
