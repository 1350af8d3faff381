/**
 * The Graph simulator's data: tenants (with consented apps), users, mail folders, messages
 * and their change log (for delta), subscriptions. Plain objects; the HTTP layer in
 * server.ts implements Microsoft's documented behaviour on top.
 */
import crypto from "node:crypto";

export interface SimApp {
  clientId: string;
  clientSecret?: string;
  /** PEM of the app's certificate credential (public part). */
  certificatePem?: string;
  /** Application permissions consented in this tenant (app roles in the token). */
  roles: string[];
}

export interface SimTenant {
  tenantId: string;
  apps: Map<string, SimApp>;
  users: Map<string, SimUser>;
  consentGranted: boolean;
}

export interface SimUser {
  id: string;
  tenantId: string;
  userPrincipalName: string;
  mail: string;
  displayName: string;
  proxyAddresses: string[];
  folders: Map<string, SimFolder>;
  messages: Map<string, SimMessage>;
  tombstones: Tombstone[];
  seq: number;
  /** Contact folders; the default one has the well-known name "contacts". */
  contactFolders: Map<string, SimFolder>;
  contacts: Map<string, SimContact>;
  contactTombstones: Tombstone[];
  /** Primary calendar: single instances and series masters. */
  events: Map<string, SimEvent>;
}

export interface SimContact {
  id: string;
  folderId: string;
  changeKey: string;
  createdDateTime: string;
  lastModifiedDateTime: string;
  /** The contact's Graph properties as last written (only documented names are accepted). */
  props: Record<string, unknown>;
  ext: Map<string, { id: string; value: string }>;
  seq: number;
  /** The contact photo (contact-update-photo / profilephoto-get), absent when none. */
  photo?: { bytes: Buffer; contentType: string; etag: string };
}

export interface DateTimeTimeZone { dateTime: string; timeZone: string }

/** Graph's patternedRecurrence, the subset the simulator expands
 * (https://learn.microsoft.com/en-us/graph/api/resources/patternedrecurrence). */
export interface SimRecurrence {
  /** recurrencePattern (https://learn.microsoft.com/en-us/graph/api/resources/recurrencepattern). */
  pattern: {
    type: "daily" | "weekly" | "absoluteMonthly" | "relativeMonthly" | "absoluteYearly" | "relativeYearly";
    interval: number; daysOfWeek?: string[]; dayOfMonth?: number; month?: number; firstDayOfWeek?: string;
    index?: "first" | "second" | "third" | "fourth" | "last";
  };
  range: { type: "endDate" | "numbered" | "noEnd"; startDate: string; endDate?: string; numberOfOccurrences?: number; recurrenceTimeZone?: string };
}

export interface SimEventData {
  subject: string;
  /** Local wall time in `timeZone` (IANA or a Windows name), as Graph accepts it on create. */
  start: DateTimeTimeZone;
  end: DateTimeTimeZone;
  isAllDay: boolean;
  showAs: "free" | "tentative" | "busy" | "oof" | "workingElsewhere" | "unknown";
  sensitivity: "normal" | "personal" | "private" | "confidential";
  location: { displayName: string };
  organizer: { emailAddress: { name?: string; address: string } };
  attendees: Array<{ type: "required" | "optional" | "resource"; emailAddress: { name?: string; address: string }; status: { response: string; time: string } }>;
  responseStatus: { response: "none" | "organizer" | "tentativelyAccepted" | "accepted" | "declined" | "notResponded"; time: string };
  isCancelled: boolean;
  body: { contentType: "text" | "html"; content: string };
  /**
   * Test-only: how Graph answers for this event whatever it was created with. `timeZone`: the
   * zone its times come back in even when UTC was asked for (Exchange answers
   * "tzone://Microsoft/Utc" or the event's own zone for some mailboxes); `fields`: properties
   * replaced in the answer as they are (a showAs or response value Graph adds later, a broken
   * start), so the client's handling of what it did not expect can be driven.
   */
  answer?: { timeZone?: string; fields?: Record<string, unknown> };
}

export interface SimEvent extends SimEventData {
  id: string;
  iCalUId: string;
  changeKey: string;
  createdDateTime: string;
  lastModifiedDateTime: string;
  recurrence?: SimRecurrence;
  /** Per occurrence (by its original start, UTC ISO): changed fields, or deleted (cancelled). */
  exceptions: Map<string, { deleted: true } | { deleted?: false; changes: Partial<SimEventData> }>;
  seq: number;
}

export interface SimFolder {
  id: string;
  displayName: string;
  parentFolderId: string;
  wellKnownName?: string;
}

export interface SimAttachment {
  id: string;
  name: string;
  contentType: string;
  size: number;
  contentBytes: string;
  isInline: boolean;
}

export interface SimMessage {
  id: string;
  folderId: string;
  changeKey: string;
  createdDateTime: string;
  lastModifiedDateTime: string;
  receivedDateTime: string;
  sentDateTime?: string;
  isDraft: boolean;
  isRead: boolean;
  subject: string;
  importance: "low" | "normal" | "high";
  from?: { emailAddress: { name?: string; address?: string } };
  toRecipients: Array<{ emailAddress: { name?: string; address?: string } }>;
  /** Mail delivered to the mailbox (`outlook(u).receive`): its Cc and Reply-To. */
  ccRecipients?: Array<{ emailAddress: { name?: string; address?: string } }>;
  replyTo?: Array<{ emailAddress: { name?: string; address?: string } }>;
  /** Graph's derived type: meeting requests are `#microsoft.graph.eventMessageRequest` (eventmessagerequest resource). */
  odataType?: string;
  body: { contentType: "text" | "html"; content: string };
  /** Extended properties by normalised id (lower case). */
  ext: Map<string, { id: string; value: string }>;
  attachments: SimAttachment[];
  /** Change sequence of the last change (delta). */
  seq: number;
  /** RFC 5322 Message-ID, as Graph's internetMessageId (set on mail other products delivered). */
  internetMessageId?: string;
}

/** A message that left a folder (deleted or moved away), for delta's @removed. */
export interface Tombstone {
  id: string;
  folderId: string;
  seq: number;
}

/** Well-known folder names (https://learn.microsoft.com/en-us/graph/api/resources/mailfolder). */
export const WELL_KNOWN_FOLDERS = ["msgfolderroot", "inbox", "drafts", "sentitems", "deleteditems", "archive", "junkemail", "outbox", "recoverableitemsdeletions"] as const;

export const newId = (prefix = "AAMkAD") => `${prefix}${crypto.randomBytes(18).toString("base64url")}`;
export const newChangeKey = () => crypto.randomBytes(12).toString("base64");

export function makeUser(tenantId: string, input: { id?: string; userPrincipalName: string; mail?: string; displayName?: string; proxyAddresses?: string[] }): SimUser {
  const user: SimUser = {
    id: input.id ?? crypto.randomUUID(),
    tenantId,
    userPrincipalName: input.userPrincipalName,
    mail: input.mail ?? input.userPrincipalName,
    displayName: input.displayName ?? input.userPrincipalName.split("@")[0]!,
    proxyAddresses: input.proxyAddresses ?? [`SMTP:${input.mail ?? input.userPrincipalName}`],
    folders: new Map(),
    messages: new Map(),
    tombstones: [],
    seq: 0,
    contactFolders: new Map(),
    contacts: new Map(),
    contactTombstones: [],
    events: new Map(),
  };
  const contactsRoot: SimFolder = { id: newId("AQMkADc"), displayName: "Contacts", parentFolderId: "", wellKnownName: "contacts" };
  user.contactFolders.set(contactsRoot.id, contactsRoot);
  const root: SimFolder = { id: newId("AQMkAD"), displayName: "Top of Information Store", parentFolderId: "", wellKnownName: "msgfolderroot" };
  user.folders.set(root.id, root);
  const names: Record<string, string> = { inbox: "Inbox", drafts: "Drafts", sentitems: "Sent Items", deleteditems: "Deleted Items", archive: "Archive", junkemail: "Junk Email", outbox: "Outbox", recoverableitemsdeletions: "Deletions" };
  for (const [wk, displayName] of Object.entries(names)) {
    const f: SimFolder = { id: newId("AQMkAD"), displayName, parentFolderId: root.id, wellKnownName: wk };
    user.folders.set(f.id, f);
  }
  return user;
}

export function resolveFolder(user: SimUser, idOrWellKnown: string): SimFolder | undefined {
  const lower = idOrWellKnown.toLowerCase();
  for (const f of user.folders.values()) if (f.id === idOrWellKnown || f.wellKnownName === lower) return f;
  return undefined;
}
