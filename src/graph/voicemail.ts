/**
 * Exchange side of the voicemail sync for one mailbox: the voicemail folder, received
 * voicemail items, read state, deletes, and the folder's delta.
 *
 * A voicemail item is created non-draft in one request (PidTagMessageFlags 0x0E07 can only be
 * set at creation, MS-OXCMSG 2.2.1.6; graph-facts.md section 4) with the Unified Messaging
 * properties Outlook shows for a voice message (MS-OXOUM 2.2.5, MS-OXPROPS):
 *   PidTagMessageClass 0x001A, PidTagVoiceMessageDuration 0x6801 (seconds),
 *   PidTagSenderTelephoneNumber 0x6802, PidTagVoiceMessageSenderName 0x6803,
 *   PidTagFaxNumberOfPages 0x6804, PidTagVoiceMessageAttachmentOrder 0x6805 (attachment names in
 *   play order, separated by ";"), PidTagCallId 0x6806, PidTagMessageDeliveryTime 0x0E06;
 * sensitivity as PidTagSensitivity 0x0036 (MS-OXCMSG 2.2.1.13: 0 normal, 1 personal, 2 private,
 * 3 confidential; Graph's message resource has no sensitivity property) and importance as
 * Graph's `importance`; our sync key as a named property. Recordings are attached inline while
 * they total under 3 MB, else through upload sessions (outlook-large-attachments).
 */
import { ConnectorError } from "../errors.js";
import type { ExchangeChanges, ExchangeItem } from "../sync/ports.js";
import type { GraphClient } from "./client.js";
import { readDelta } from "./delta.js";

/** Our property set; the sync key marks items the connector created (loop prevention). */
export const SYNC_KEY_PROP = "String {6B9E9B4C-1F2D-4C55-9E1B-5A3C2D7E8F01} Name UmcSyncKey";
export const INLINE_ATTACHMENT_LIMIT = 3 * 1024 * 1024;
/** Set while a large recording is still being uploaded; a resumed create finishes the upload. */
export const AUDIO_PENDING_PROP = "String {6B9E9B4C-1F2D-4C55-9E1B-5A3C2D7E8F01} Name UmcAudioPending";
/** Upload chunk: a multiple of 320 KiB under 4 MiB, as outlook-large-attachments recommends. */
export const UPLOAD_CHUNK_BYTES = 12 * 320 * 1024;
/** Graph's attachment size limit through an upload session (outlook-large-attachments). */
export const MAX_ATTACHMENT_BYTES = 150 * 1024 * 1024;

/** MS-OXPROPS property tags of the Unified Messaging properties (MS-OXOUM 2.2.5). */
export const UM_PROPS = {
  messageClass: "String 0x001A",
  sensitivity: "Integer 0x0036",
  deliveryTime: "SystemTime 0x0E06",
  duration: "Integer 0x6801",
  senderTelephoneNumber: "String 0x6802",
  senderName: "String 0x6803",
  faxPages: "Integer 0x6804",
  attachmentOrder: "String 0x6805",
  callId: "String 0x6806",
} as const;

const SENSITIVITY_VALUE = { normal: 0, personal: 1, private: 2, confidential: 3 } as const;

export interface VoicemailAttachment { name: string; contentType: string; bytes: Buffer }

export interface VoicemailItem {
  syncKey: string;
  subject: string;
  bodyHtml: string;
  messageClass: string;
  isRead: boolean;
  receivedAt?: Date;
  caller?: { name?: string; number?: string; address?: string };
  durationSeconds?: number;
  importance?: "low" | "normal" | "high";
  sensitivity?: keyof typeof SENSITIVITY_VALUE;
  faxPages?: number;
  callId?: string;
  /** Recordings in play order (or the fax document); their names form the attachment order. */
  attachments: VoicemailAttachment[];
  /** PidTagVoiceMessageAttachmentOrder: set for voice messages with recordings. */
  attachmentOrder?: string[];
}

interface Message {
  id: string;
  isRead?: boolean;
  internetMessageId?: string;
  receivedDateTime?: string;
  from?: { emailAddress?: { name?: string; address?: string } };
  "@removed"?: { reason: string };
  singleValueExtendedProperties?: Array<{ id: string; value: string }>;
}

const propOf = (m: Message, id: string) => m.singleValueExtendedProperties?.find((p) => p.id.toLowerCase() === id.toLowerCase())?.value;
const syncKeyOf = (m: Message) => propOf(m, SYNC_KEY_PROP);
/**
 * Voice-message properties of items other products made (MS-OXOUM, MS-OXPROPS): message
 * class (0x001A), PidTagVoiceMessageDuration (0x6801), PidTagSenderTelephoneNumber (0x6802),
 * read for adoption; Graph returns extended properties only when expanded by id.
 */
export const CLASS_PROP = "String 0x001A";
export const DURATION_PROP = "Integer 0x6801";
export const CALLER_NUMBER_PROP = "String 0x6802";
const EXPAND = `singleValueExtendedProperties($filter=id eq '${SYNC_KEY_PROP}' or id eq '${AUDIO_PENDING_PROP}' or id eq '${CLASS_PROP}' or id eq '${DURATION_PROP}' or id eq '${CALLER_NUMBER_PROP}')`;
const SELECT = "isRead,internetMessageId,receivedDateTime,from";

/** What adoption matches another product's voicemail by (no sync key: not ours). */
function foreignOf(m: Message): ExchangeItem["foreign"] {
  const duration = Number(propOf(m, DURATION_PROP));
  return {
    messageClass: propOf(m, CLASS_PROP),
    internetMessageId: m.internetMessageId,
    // Exchange UM puts the caller's number in PidTagSenderTelephoneNumber; products writing
    // plain mail put it in the sender address (e.g. +4930123456@pbx).
    callerNumber: propOf(m, CALLER_NUMBER_PROP) ?? m.from?.emailAddress?.address?.match(/^\+?\d{3,}(?=@)/)?.[0] ?? m.from?.emailAddress?.name?.match(/\+?\d[\d ()./-]{2,}/)?.[0],
    receivedAt: m.receivedDateTime ? Date.parse(m.receivedDateTime) : undefined,
    durationSeconds: Number.isFinite(duration) && propOf(m, DURATION_PROP) !== undefined ? duration : undefined,
  };
}

/** Well-known folder ids never change for a mailbox: looked up once per process. */
const wellKnownIds = new Map<string, string>();

export class ExchangeVoicemail {
  constructor(private readonly graph: GraphClient, private readonly userId: string) {}

  private get user() { return `/users/${encodeURIComponent(this.userId)}`; }

  /** The folder id for a well-known name ("inbox") or a display name under the root, created when missing. */
  async ensureFolder(name: string): Promise<string> {
    const wellKnown = /^(inbox|archive|deleteditems|junkemail|drafts|sentitems|msgfolderroot)$/i.test(name);
    if (wellKnown) return (await this.graph.request<{ id: string }>({ method: "GET", url: `${this.user}/mailFolders/${name}`, mailbox: this.userId })).id;
    const find = async () => {
      const r = await this.graph.request<{ value: Array<{ id: string; displayName: string }> }>({ method: "GET", url: `${this.user}/mailFolders/msgfolderroot/childFolders?$top=250`, mailbox: this.userId });
      return r.value.find((f) => f.displayName.toLowerCase() === name.toLowerCase())?.id;
    };
    const existing = await find();
    if (existing) return existing;
    try {
      return (await this.graph.request<{ id: string }>({ method: "POST", url: `${this.user}/mailFolders/msgfolderroot/childFolders`, body: { displayName: name }, mailbox: this.userId })).id;
    } catch (e) {
      // Created concurrently (409 ErrorFolderExists): use that one.
      const again = await find();
      if (again) return again;
      throw e;
    }
  }

  async create(folderId: string, item: VoicemailItem): Promise<ExchangeItem> {
    // Recordings that total 3 MB and more go through upload sessions after the create
    // (https://learn.microsoft.com/en-us/graph/outlook-large-attachments); the item carries a
    // pending marker until the upload is done, so a crash in between is finished on resume.
    const total = item.attachments.reduce((a, x) => a + x.bytes.length, 0);
    const large = total >= INLINE_ATTACHMENT_LIMIT;
    for (const a of item.attachments) {
      if (a.bytes.length > MAX_ATTACHMENT_BYTES) throw new ConnectorError("PAYLOAD_TOO_LARGE", `attachment of ${a.bytes.length} bytes exceeds Graph's 150 MB attachment limit`, { syncKey: item.syncKey });
    }
    const props: Array<{ id: string; value: string }> = [
      { id: "Integer 0x0E07", value: item.isRead ? "1" : "0" }, // mfRead, not mfUnsent: a received item
      { id: UM_PROPS.messageClass, value: item.messageClass },
      { id: SYNC_KEY_PROP, value: item.syncKey },
      { id: UM_PROPS.sensitivity, value: String(SENSITIVITY_VALUE[item.sensitivity ?? "normal"]) },
    ];
    if (item.receivedAt) props.push({ id: UM_PROPS.deliveryTime, value: item.receivedAt.toISOString() });
    if (item.durationSeconds !== undefined) props.push({ id: UM_PROPS.duration, value: String(Math.max(1, Math.round(item.durationSeconds))) });
    if (item.caller?.name) props.push({ id: UM_PROPS.senderName, value: item.caller.name });
    if (item.caller?.number) props.push({ id: UM_PROPS.senderTelephoneNumber, value: item.caller.number });
    if (item.faxPages !== undefined) props.push({ id: UM_PROPS.faxPages, value: String(item.faxPages) });
    if (item.callId) props.push({ id: UM_PROPS.callId, value: item.callId });
    if (item.attachmentOrder?.length) props.push({ id: UM_PROPS.attachmentOrder, value: item.attachmentOrder.join(";") });
    if (large) props.push({ id: AUDIO_PENDING_PROP, value: "1" });
    const from = item.caller?.address || item.caller?.number
      ? { emailAddress: { name: item.caller.name ?? item.caller.number, address: item.caller.address ?? "" } }
      : undefined;
    const created = await this.graph.request<Message>({
      method: "POST",
      url: `${this.user}/mailFolders/${encodeURIComponent(folderId)}/messages`,
      mailbox: this.userId,
      body: {
        subject: item.subject,
        body: { contentType: "html", content: item.bodyHtml },
        importance: item.importance ?? "normal",
        ...(from ? { from } : {}),
        singleValueExtendedProperties: props,
        ...(item.attachments.length && !large ? { attachments: item.attachments.map((a) => ({ "@odata.type": "#microsoft.graph.fileAttachment", name: a.name, contentType: a.contentType, contentBytes: a.bytes.toString("base64") })) } : {}),
      },
    });
    if (large) await this.uploadAttachments(created.id, item.attachments);
    return { id: created.id, isRead: created.isRead ?? item.isRead, syncKey: item.syncKey };
  }

  /**
   * Uploads the recordings to an existing item, then clears its pending marker. An attachment
   * exists only once its last chunk arrived (outlook-large-attachments), so a resumed upload
   * sends just the recordings the item does not have yet.
   */
  async uploadAttachments(id: string, attachments: VoicemailAttachment[]): Promise<void> {
    const existing = await this.graph.request<{ value: Array<{ name: string }> }>({ method: "GET", url: `${this.user}/messages/${encodeURIComponent(id)}/attachments?$select=name`, mailbox: this.userId });
    const have = new Set(existing.value.map((a) => a.name));
    for (const a of attachments) if (!have.has(a.name)) await this.uploadOne(id, a);
    await this.graph.request({ method: "PATCH", url: `${this.user}/messages/${encodeURIComponent(id)}`, mailbox: this.userId, body: { singleValueExtendedProperties: [{ id: AUDIO_PENDING_PROP, value: "0" }] } });
  }

  private async uploadOne(id: string, audio: VoicemailAttachment): Promise<void> {
    const session = await this.graph.request<{ uploadUrl: string }>({
      method: "POST", url: `${this.user}/messages/${encodeURIComponent(id)}/attachments/createUploadSession`, mailbox: this.userId,
      body: { AttachmentItem: { attachmentType: "file", name: audio.name, size: audio.bytes.length, contentType: audio.contentType } },
    });
    for (let start = 0; start < audio.bytes.length; start += UPLOAD_CHUNK_BYTES) {
      const chunk = audio.bytes.subarray(start, Math.min(audio.bytes.length, start + UPLOAD_CHUNK_BYTES));
      // The upload URL is pre-authenticated: no Authorization header (outlook-large-attachments).
      let res: Response;
      try {
        res = await fetch(session.uploadUrl, { method: "PUT", headers: { "content-type": "application/octet-stream", "content-range": `bytes ${start}-${start + chunk.length - 1}/${audio.bytes.length}` }, body: new Uint8Array(chunk) });
      } catch (e) {
        throw new ConnectorError("GRAPH_UNAVAILABLE", `attachment upload failed: ${(e as Error).message}`, { mailboxId: this.userId, graphId: id, cause: e });
      }
      if (res.status === 429) {
        const retryAfter = Number(res.headers.get("retry-after") ?? 5);
        throw new ConnectorError("GRAPH_THROTTLED", "attachment upload answered HTTP 429", { mailboxId: this.userId, graphId: id, retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : 5 });
      }
      if (res.status >= 400) {
        throw new ConnectorError(res.status >= 500 ? "GRAPH_UNAVAILABLE" : "GRAPH_REQUEST_FAILED", `attachment upload answered HTTP ${res.status}`, { mailboxId: this.userId, graphId: id });
      }
    }
  }

  async findBySyncKey(folderId: string, syncKey: string): Promise<ExchangeItem | undefined> {
    const filter = `singleValueExtendedProperties/Any(ep: ep/id eq '${SYNC_KEY_PROP}' and ep/value eq '${syncKey.replace(/'/g, "''")}')`;
    const expand = `singleValueExtendedProperties($filter=id eq '${AUDIO_PENDING_PROP}')`;
    const r = await this.graph.request<{ value: Message[] }>({ method: "GET", url: `${this.user}/mailFolders/${encodeURIComponent(folderId)}/messages?$filter=${encodeURIComponent(filter)}&$select=id,isRead&$expand=${encodeURIComponent(expand)}&$top=2`, mailbox: this.userId });
    const m = r.value[0];
    return m && { id: m.id, isRead: m.isRead ?? false, syncKey, incomplete: propOf(m, AUDIO_PENDING_PROP) === "1" };
  }

  async setRead(id: string, isRead: boolean): Promise<void> {
    await this.graph.request({ method: "PATCH", url: `${this.user}/messages/${encodeURIComponent(id)}`, body: { isRead }, mailbox: this.userId, batchable: true });
  }

  /** What Outlook's Delete does: a move to Deleted Items (graph-facts.md section 5). */
  async moveToDeletedItems(id: string): Promise<void> {
    await this.graph.request({ method: "POST", url: `${this.user}/messages/${encodeURIComponent(id)}/move`, body: { destinationId: "deleteditems" }, mailbox: this.userId, batchable: true });
  }

  /** Adoption: our sync key on another product's voicemail, and the merged read state, in one PATCH. */
  async adopt(id: string, syncKey: string, isRead?: boolean): Promise<void> {
    await this.graph.request({ method: "PATCH", url: `${this.user}/messages/${encodeURIComponent(id)}`, mailbox: this.userId, batchable: true, body: { ...(isRead === undefined ? {} : { isRead }), singleValueExtendedProperties: [{ id: SYNC_KEY_PROP, value: syncKey }] } });
  }

  /** A voice-store delete that the profile sends to a folder of its own. */
  async move(id: string, folderId: string): Promise<void> {
    await this.graph.request({ method: "POST", url: `${this.user}/messages/${encodeURIComponent(id)}/move`, body: { destinationId: folderId }, mailbox: this.userId, batchable: true });
  }

  /**
   * Where copies that left the voicemail folder are now. The client asks for immutable ids on
   * every request, so a copy moved inside the mailbox keeps its id and is found by it
   * (https://learn.microsoft.com/en-us/graph/outlook-immutable-id); 404 means it left the
   * mailbox (purged, or moved to the archive mailbox, where the id changes). Deleted Items and
   * Recoverable Items (Outlook's Shift+Delete, https://learn.microsoft.com/en-us/graph/api/resources/mailfolder)
   * are told apart by their folder ids.
   */
  async locate(folderId: string, ids: string[]): Promise<Map<string, { where: "folder" | "elsewhere" | "deletedItems" | "recoverableItems"; isRead: boolean }>> {
    const out = new Map<string, { where: "folder" | "elsewhere" | "deletedItems" | "recoverableItems"; isRead: boolean }>();
    if (!ids.length) return out;
    const [deleted, recoverable] = await Promise.all(["deleteditems", "recoverableitemsdeletions"].map((n) => this.wellKnownId(n)));
    await Promise.all(ids.map(async (id) => {
      try {
        const m = await this.graph.request<{ id: string; isRead?: boolean; parentFolderId?: string }>({ method: "GET", url: `${this.user}/messages/${encodeURIComponent(id)}?$select=isRead,parentFolderId`, mailbox: this.userId });
        const f = m.parentFolderId;
        out.set(id, { where: f === folderId ? "folder" : f === deleted ? "deletedItems" : f === recoverable ? "recoverableItems" : "elsewhere", isRead: m.isRead ?? false });
      } catch (e) {
        if (!(e instanceof ConnectorError && e.code === "GRAPH_NOT_FOUND")) throw e;
      }
    }));
    return out;
  }

  private async wellKnownId(name: string): Promise<string | undefined> {
    const key = `${this.userId}|${name}`;
    if (!wellKnownIds.has(key)) {
      try {
        wellKnownIds.set(key, (await this.graph.request<{ id: string }>({ method: "GET", url: `${this.user}/mailFolders/${name}?$select=id`, mailbox: this.userId })).id);
      } catch (e) {
        if (!(e instanceof ConnectorError && e.code === "GRAPH_NOT_FOUND")) throw e;
        return undefined;
      }
    }
    return wellKnownIds.get(key);
  }

  async hardDelete(id: string): Promise<void> {
    await this.graph.request({ method: "POST", url: `${this.user}/messages/${encodeURIComponent(id)}/permanentDelete`, mailbox: this.userId, batchable: true });
  }

  /**
   * Follows the folder's delta to its deltaLink (message-delta). Without a deltaLink this is a
   * full listing. Items that left the folder come back as removed.
   */
  async changes(folderId: string, deltaLink: string | undefined, pageSize = 100): Promise<ExchangeChanges> {
    const firstUrl = `${this.user}/mailFolders/${encodeURIComponent(folderId)}/messages/delta?$select=${SELECT}&$expand=${encodeURIComponent(EXPAND)}`;
    return readDelta<Message, ExchangeItem>(this.graph, { deltaLink, firstUrl, pageSize, mailbox: this.userId, map: (m) => {
      const syncKey = syncKeyOf(m);
      return { id: m.id, isRead: m.isRead ?? false, syncKey, incomplete: propOf(m, AUDIO_PENDING_PROP) === "1" || undefined, foreign: syncKey ? undefined : foreignOf(m) };
    } });
  }
}
