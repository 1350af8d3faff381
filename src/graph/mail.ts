/**
 * Exchange side of e-mail on the phone (src/sync/mailSync.ts): the user's mail folders read by
 * per-folder message delta, attachments, read state, and Outlook's Delete.
 *
 * Delta (https://learn.microsoft.com/en-us/graph/api/message-delta): the first round takes
 * `$filter=receivedDateTime ge {date}` (the only $filter message delta supports besides the
 * change type, "Optional query parameters"), `$select` and `$expand` of single-value extended
 * properties; Graph bakes them into the nextLink/deltaLink, which are reused as they are
 * (https://learn.microsoft.com/en-us/graph/delta-query-overview). So only the first sync lists
 * the folder (and only the last `maxAgeDays`); every later run reads what changed. Pages are
 * asked for with `Prefer: odata.maxpagesize`.
 */
import type { GraphClient } from "./client.js";
import { readDelta } from "./delta.js";
import { CLASS_PROP, SYNC_KEY_PROP } from "./voicemail.js";
import type { MailAttachment } from "../formats/emailForPhone.js";
import type { MailChanges, MailSeen } from "../sync/mailPlanner.js";

/** PidTagMessageSize (MS-OXPROPS 2.795, 0x0E08): Graph's message resource has no size property. */
export const SIZE_PROP = "Integer 0x0E08";
const EXPAND = `singleValueExtendedProperties($filter=id eq '${SYNC_KEY_PROP}' or id eq '${CLASS_PROP}' or id eq '${SIZE_PROP}')`;
/** What the copy and the filters read (message resource properties). */
export const MAIL_SELECT = "subject,receivedDateTime,from,toRecipients,ccRecipients,replyTo,isRead,hasAttachments,body";
/** Messages per delta page: bodies are in the pages, so pages stay moderate (memory per page). */
export const MAIL_PAGE_SIZE = 50;

interface Address { emailAddress?: { name?: string; address?: string } }
interface Message {
  id: string;
  "@odata.type"?: string;
  "@removed"?: { reason: string };
  subject?: string;
  receivedDateTime?: string;
  from?: Address;
  toRecipients?: Address[];
  ccRecipients?: Address[];
  replyTo?: Address[];
  isRead?: boolean;
  hasAttachments?: boolean;
  body?: { contentType?: string; content?: string };
  singleValueExtendedProperties?: Array<{ id: string; value: string }>;
}

const prop = (m: Message, id: string) => m.singleValueExtendedProperties?.find((p) => p.id.toLowerCase() === id.toLowerCase())?.value;
const addr = (a?: Address) => (a?.emailAddress ? { name: a.emailAddress.name, address: a.emailAddress.address } : undefined);
const addrs = (l?: Address[]) => (l ?? []).map(addr).filter((a): a is NonNullable<typeof a> => !!a);

export function toMailSeen(m: Message): MailSeen {
  const size = Number(prop(m, SIZE_PROP));
  return {
    id: m.id, subject: m.subject, receivedDateTime: m.receivedDateTime, isRead: m.isRead ?? false, hasAttachments: m.hasAttachments ?? false,
    from: addr(m.from), toRecipients: addrs(m.toRecipients), ccRecipients: addrs(m.ccRecipients), replyTo: addrs(m.replyTo), body: m.body,
    odataType: m["@odata.type"], messageClass: prop(m, CLASS_PROP), syncKey: prop(m, SYNC_KEY_PROP),
    size: Number.isFinite(size) && prop(m, SIZE_PROP) !== undefined ? size : undefined,
  };
}

export class ExchangeMail {
  constructor(private readonly graph: GraphClient, private readonly userId: string) {}

  private get user() { return `/users/${encodeURIComponent(this.userId)}`; }

  /**
   * One folder's changes since `deltaLink`; without one, the folder's messages received since
   * `receivedSince` (the first sync). `folder` is a well-known name or a folder id.
   */
  async changes(folder: string, deltaLink: string | undefined, receivedSince: Date, pageSize = MAIL_PAGE_SIZE): Promise<MailChanges> {
    const since = receivedSince.toISOString().replace(/\.\d{3}Z$/, "Z");
    const firstUrl = `${this.user}/mailFolders/${encodeURIComponent(folder)}/messages/delta?$filter=${encodeURIComponent(`receivedDateTime ge ${since}`)}&$select=${MAIL_SELECT}&$expand=${encodeURIComponent(EXPAND)}`;
    return readDelta<Message, MailSeen>(this.graph, { deltaLink, firstUrl, pageSize, mailbox: this.userId, map: toMailSeen });
  }

  /** One message (a copy resumed after a crash, when this run's delta did not name it). */
  async get(id: string): Promise<MailSeen> {
    return toMailSeen(await this.graph.request<Message>({ method: "GET", url: `${this.user}/messages/${encodeURIComponent(id)}?$select=${MAIL_SELECT}&$expand=${encodeURIComponent(EXPAND)}`, mailbox: this.userId }));
  }

  /** The message's attachments without their content (https://learn.microsoft.com/en-us/graph/api/message-list-attachments). */
  async attachments(id: string): Promise<Array<MailAttachment & { id: string }>> {
    const r = await this.graph.request<{ value: Array<{ id: string; name?: string; contentType?: string; size?: number; isInline?: boolean }> }>({
      method: "GET", url: `${this.user}/messages/${encodeURIComponent(id)}/attachments?$select=id,name,contentType,size,isInline`, mailbox: this.userId,
    });
    return r.value.map((a) => ({ id: a.id, name: a.name ?? "attachment", contentType: a.contentType ?? "application/octet-stream", size: a.size ?? 0, isInline: a.isInline }));
  }

  /** One file attachment's content (attachment-get: fileAttachment.contentBytes, base64). */
  async attachmentBytes(id: string, attachmentId: string): Promise<Buffer | undefined> {
    const a = await this.graph.request<{ contentBytes?: string }>({ method: "GET", url: `${this.user}/messages/${encodeURIComponent(id)}/attachments/${encodeURIComponent(attachmentId)}`, mailbox: this.userId });
    return a.contentBytes === undefined ? undefined : Buffer.from(a.contentBytes, "base64");
  }

  async setRead(id: string, isRead: boolean): Promise<void> {
    await this.graph.request({ method: "PATCH", url: `${this.user}/messages/${encodeURIComponent(id)}`, body: { isRead }, mailbox: this.userId, batchable: true });
  }

  /** What Outlook's Delete does: a move to Deleted Items (https://learn.microsoft.com/en-us/graph/api/message-move). */
  async moveToDeletedItems(id: string): Promise<void> {
    await this.graph.request({ method: "POST", url: `${this.user}/messages/${encodeURIComponent(id)}/move`, body: { destinationId: "deleteditems" }, mailbox: this.userId });
  }
}
