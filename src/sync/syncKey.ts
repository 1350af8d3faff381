/**
 * Sync keys for messages that originate on the voice store.
 *
 * Voice-store messages cannot be changed to carry our key (IMAP messages are immutable,
 * RFC 3501 section 2.3), so the key is derived from what identifies the message for good:
 * its Message-ID, or, for stores that omit it, Date + From + Subject + size + INTERNALDATE.
 * The same message therefore gets the same key after a UIDVALIDITY reset or a state loss,
 * which is what makes re-matching by key possible (DESIGN.md section 3).
 */
import crypto from "node:crypto";

export interface VoiceIdentity {
  messageId?: string;
  date?: string;
  from?: string;
  subject?: string;
  size?: number;
  internalDate?: string;
}

export function voiceSyncKey(id: VoiceIdentity): string {
  const basis = id.messageId?.trim()
    ? `mid:${id.messageId.trim().toLowerCase()}`
    : `hdr:${id.date ?? ""}|${id.from ?? ""}|${id.subject ?? ""}|${id.size ?? ""}|${id.internalDate ?? ""}`;
  return "v" + crypto.createHash("sha256").update(basis).digest("base64url").slice(0, 32);
}
