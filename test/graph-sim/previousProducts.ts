/**
 * Voice messages as other unified-messaging products left them in Exchange before a customer
 * moves to umconnect (issue 17): the mailbox is pre-filled the way those products wrote it,
 * straight into the simulator's model (they used EWS/MAPI/SMTP, not Graph).
 *
 * - Exchange UM (Exchange 2010-2016, Exchange Online UM until 2020): message class
 *   IPM.Note.Microsoft.Voicemail.UM.CA (call answering) per MS-OXOUM 2.2.2.1; caller number in
 *   PidTagSenderTelephoneNumber (0x6802), caller name in PidTagVoiceMessageSenderName (0x6803),
 *   duration in PidTagVoiceMessageDuration (0x6801), audio named in
 *   PidTagVoiceMessageAttachmentOrder (0x6805) (MS-OXPROPS; MIME forms X-CallingTelephoneNumber,
 *   X-VoiceMessageSenderName, X-VoiceMessageDuration, X-AttachmentOrder: MS-OXCMAIL
 *   2.2.3.2.23). Exchange UM recorded the call itself, so its Internet Message-ID is its own
 *   (never the voice store's): adoption matches these on caller, time and duration. Subject
 *   "Voice Mail from <caller> (<n> seconds)", audio "audio.mp3" (Exchange 2013+ default MP3).
 * - Cisco Unity Connection single inbox: Unity Connection stores the message and replicates it
 *   into the Exchange mailbox (Cisco, "Single Inbox", Design Guide for Cisco Unity Connection
 *   12.x: https://www.cisco.com/c/en/us/td/docs/voice_ip_comm/connection/12x/design/guide/b_12xcucdg/b_12xcucdg_chapter_010100.html).
 *   Cisco does not publish the Exchange-side properties; modelled here as the replica of the
 *   store message: same Internet Message-ID, voicemail message class, the audio attached. What
 *   adoption relies on for it is the Message-ID only (RFC 5322 3.6.4: unique per message).
 */
import { newChangeKey, newId, resolveFolder, type SimMessage, type SimUser } from "./model.js";
import type { GraphSimulator } from "./server.js";

export interface PreviousVoicemail {
  callerNumber: string;
  callerName?: string;
  durationSeconds: number;
  receivedAt: Date;
  isRead?: boolean;
  /** Cisco single inbox: the Message-ID of the store message it replicates. */
  internetMessageId?: string;
  folder?: string;
}

function put(sim: GraphSimulator, user: SimUser, m: Omit<SimMessage, "id" | "changeKey" | "createdDateTime" | "lastModifiedDateTime" | "seq" | "folderId">, folder = "inbox"): SimMessage {
  const f = resolveFolder(user, folder);
  if (!f) throw new Error(`no folder ${folder}`);
  const now = new Date().toISOString();
  const msg: SimMessage = { ...m, id: newId(), folderId: f.id, changeKey: newChangeKey(), createdDateTime: now, lastModifiedDateTime: now, seq: 0 };
  user.messages.set(msg.id, msg);
  sim.touch(user, msg, "created");
  return msg;
}

const ext = (pairs: Array<[string, string]>) => new Map(pairs.map(([id, value]) => [id.toLowerCase(), { id, value }]));
const audio = (name: string, bytes: number) => [{ id: newId("AAMkAtt"), name, contentType: name.endsWith(".mp3") ? "audio/mpeg" : "audio/wav", size: bytes, contentBytes: Buffer.alloc(bytes, 1).toString("base64"), isInline: false }];

/** A voicemail as Exchange Unified Messaging left it (call answering). */
export function exchangeUmVoicemail(sim: GraphSimulator, userRef: string, v: PreviousVoicemail): SimMessage {
  const user = sim.userByRef(userRef);
  const who = v.callerName ?? v.callerNumber;
  return put(sim, user, {
    receivedDateTime: v.receivedAt.toISOString(), isDraft: false, isRead: v.isRead ?? false,
    subject: `Voice Mail from ${who} (${v.durationSeconds} seconds)`, importance: "normal",
    from: { emailAddress: { name: who, address: "" } }, toRecipients: [{ emailAddress: { address: user.mail } }],
    body: { contentType: "html", content: `<html><body><p>You received a voice mail from ${who}.</p></body></html>` },
    ext: ext([
      ["String 0x001A", "IPM.Note.Microsoft.Voicemail.UM.CA"],
      ["Integer 0x6801", String(v.durationSeconds)],
      ["String 0x6802", v.callerNumber],
      ...(v.callerName ? [["String 0x6803", v.callerName] as [string, string]] : []),
      ["String 0x6805", "audio.mp3"],
    ]),
    attachments: audio("audio.mp3", 2048),
    internetMessageId: `<${newId("UM").slice(0, 24)}@exum01.contoso.test>`,
  } as Omit<SimMessage, "id" | "changeKey" | "createdDateTime" | "lastModifiedDateTime" | "seq" | "folderId">, v.folder);
}

/** A voicemail as Cisco Unity Connection single inbox replicated it (same Message-ID as the store's). */
export function ciscoSingleInboxVoicemail(sim: GraphSimulator, userRef: string, v: PreviousVoicemail & { internetMessageId: string }): SimMessage {
  const user = sim.userByRef(userRef);
  const who = v.callerName ?? v.callerNumber;
  return put(sim, user, {
    receivedDateTime: v.receivedAt.toISOString(), isDraft: false, isRead: v.isRead ?? false,
    subject: `Message from ${who}`, importance: "normal",
    from: { emailAddress: { name: who, address: "" } }, toRecipients: [{ emailAddress: { address: user.mail } }],
    body: { contentType: "html", content: "<html><body></body></html>" },
    ext: ext([["String 0x001A", "IPM.Note.Microsoft.Voicemail.UM.CA"], ["Integer 0x6801", String(v.durationSeconds)]]),
    attachments: audio("VoiceMessage.wav", 4096),
    internetMessageId: v.internetMessageId,
  } as Omit<SimMessage, "id" | "changeKey" | "createdDateTime" | "lastModifiedDateTime" | "seq" | "folderId">, v.folder);
}
