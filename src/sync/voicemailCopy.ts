/**
 * What a voice-store message becomes in Exchange: the voicemail item's subject, body, class,
 * caller, duration and audio, by the profile's rules (DESIGN.md section 1):
 *  - voice -> IPM.Note.Microsoft.Voicemail.UM.CA (MS-OXCMAIL: Content-Class voice-ca), fax ->
 *    IPM.Note.Microsoft.Fax.CA; the audio (or fax image) attached;
 *  - secure/private voice messages: no audio, a "listen by phone" notice;
 *  - receipts and plain mail only when the profile copies them; never what we wrote ourselves.
 */
import type { FeatureProfile } from "../admin/profiles.js";
import type { VoicemailItem } from "../graph/voicemail.js";
import type { VoiceMessage } from "../formats/voiceMessage.js";

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
  if (m.sensitivity !== "normal" && profile.secureMessages === "skip") return { copy: false, code: "NOT_COPIED_BY_PROFILE", message: "secure messages are not copied" };
  const domain = profile.loopPreventionDomain?.toLowerCase();
  if (domain && m.class === "email" && m.caller.address?.toLowerCase().endsWith("@" + domain)) return { copy: false, code: "LOOP_PREVENTED", message: "addressed from the voice system's own domain" };
  return { copy: true };
}

function duration(s: number | undefined): string {
  if (s === undefined) return "";
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.round(s % 60)).padStart(2, "0")}`;
}

export function toVoicemailItem(m: VoiceMessage, syncKey: string, seen: boolean): VoicemailItem {
  const secure = m.sensitivity !== "normal";
  const who = m.caller.name && m.caller.number ? `${m.caller.name} (${m.caller.number})` : (m.caller.name ?? m.caller.number ?? "an unknown caller");
  const kind = m.class === "fax" ? "Fax" : "Voice message";
  const lines = [
    `<p>${kind} from ${esc(who)}${m.durationSeconds !== undefined ? `, ${duration(m.durationSeconds)} min` : ""}.</p>`,
    secure
      ? "<p><strong>This message is private.</strong> Its audio stays on the voice mail system: call your voice mailbox to listen to it.</p>"
      : m.class === "fax" ? "<p>The fax is attached.</p>" : "<p>The recording is attached.</p>",
  ];
  const attachment = secure ? undefined : (m.audio ?? m.fax);
  return {
    syncKey,
    subject: m.subject || `${kind} from ${who}`,
    bodyHtml: `<html><body>${lines.join("")}</body></html>`,
    messageClass: m.class === "fax" ? FAX_CLASS : m.class === "voice" ? VOICEMAIL_CLASS : "IPM.Note",
    isRead: seen,
    receivedAt: m.receivedAt,
    caller: m.caller,
    durationSeconds: m.durationSeconds,
    importance: m.importance,
    sensitivity: m.sensitivity,
    audio: attachment,
  };
}
