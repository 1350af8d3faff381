/**
 * What the sync executors (voicemail, contacts, calendar) need from each side and from the
 * state store. The sync core depends on these interfaces only; src/app binds them to the IMAP
 * adapter (src/imap), the Graph adapters (src/graph) and the state store (src/state).
 */
import type { ContactFields } from "../formats/vcard.js";
import type { Photo } from "../formats/contactPhoto.js";
import type { Occurrence } from "../formats/icalendar.js";

export interface ImapCursor {
  uidValidity: number;
  highestModseq?: string;
  uidNext?: number;
}

/** Changes on the voice mailbox since a cursor, or everything when `full`. */
export interface VoiceChanges {
  cursor: ImapCursor;
  /** True when every present message is listed (first run, UIDVALIDITY change, no CONDSTORE). */
  full: boolean;
  /** Messages whose flags changed (or all, when full). */
  changed: Array<{ uid: number; seen: boolean }>;
  /** UIDs expunged since the cursor (never set when full: absence means gone). */
  vanished: number[];
  /** The UIDVALIDITY moved: every stored UID is void; re-match by sync key. */
  uidValidityChanged: boolean;
}

export interface VoiceMailboxPort {
  changes(since: ImapCursor | undefined): Promise<VoiceChanges>;
  /** The connector's sync key for each message (derived from stable headers). */
  syncKeys(uids: number[]): Promise<Map<number, string>>;
  fetchSource(uid: number): Promise<Buffer>;
  setSeen(uid: number, seen: boolean): Promise<void>;
  /** Expunge, or move to the store's trash, as the profile says; where it went when moved. */
  remove(uid: number): Promise<StoreTrashed | void>;
  /**
   * Moves a message the connector put in the store's trash back into the folder (an Outlook
   * restore from Deleted Items); its new UID, or undefined when the trash no longer holds it.
   */
  restore?(from: StoreTrashed): Promise<number | undefined>;
  /** Full sources of several messages in one FETCH (adoption reads caller and duration); optional. */
  fetchSources?(uids: number[]): Promise<Array<{ uid: number; source: Buffer }>>;
  /** Message-ID and Date of messages (envelope only; adoption matches on them first). */
  identities(uids: number[]): Promise<Map<number, { messageId?: string; date?: Date }>>;
}

export interface ExchangeItem {
  id: string;
  isRead: boolean;
  /** Our sync key, read from the extended property; absent on mail we did not create. */
  syncKey?: string;
  /** Created, but its recording upload did not finish (a crash in between). */
  incomplete?: boolean;
  /** On items without our key: what adoption matches a previous product's voicemail by. */
  foreign?: { messageClass?: string; internetMessageId?: string; callerNumber?: string; receivedAt?: number; durationSeconds?: number };
}

/**
 * One round of a Graph delta query (src/graph/delta.ts), the shape every Exchange-side port
 * answers with: what changed, what went, and the cursor for the next round.
 */
export interface DeltaChanges<T> {
  /** True when this is a full listing (first run, or an expired delta token replaced). */
  full: boolean;
  upserted: T[];
  removed: string[];
  deltaLink: string;
}

export type ExchangeChanges = DeltaChanges<ExchangeItem>;

export interface VoicemailCopy {
  syncKey: string;
  seen: boolean;
  source: Buffer;
  internalDate?: Date;
}

export interface ExchangeMailboxPort {
  changes(deltaLink: string | undefined): Promise<ExchangeChanges>;
  findBySyncKey(syncKey: string): Promise<ExchangeItem | undefined>;
  /** Creates the received voicemail item (non-draft, with audio) and returns its id. */
  create(copy: VoicemailCopy): Promise<ExchangeItem>;
  /** Finishes an incomplete copy (uploads its recording). */
  complete(id: string, copy: VoicemailCopy): Promise<void>;
  setRead(id: string, isRead: boolean): Promise<void>;
  /** Writes our sync key onto another product's voicemail (adoption), with its read state when given: one request. */
  adopt(id: string, syncKey: string, isRead?: boolean): Promise<void>;
  /** Moves the copy to Deleted Items (or hard-deletes, or moves to a folder, per profile). */
  remove(id: string): Promise<void>;
  /**
   * Where copies that left the voicemail folder are now, by their immutable ids (same id after
   * a move inside the mailbox: https://learn.microsoft.com/en-us/graph/outlook-immutable-id):
   * "folder" (back in it), "elsewhere" (another folder), "deletedItems", "recoverableItems"
   * (Outlook's hard delete), or undefined when the mailbox does not have it any more.
   */
  locate(ids: string[]): Promise<Map<string, { where: "folder" | "elsewhere" | "deletedItems" | "recoverableItems"; isRead: boolean }>>;
}

/** One linked item as the state store keeps it. */
/** A store message the connector moved to the store's trash folder (COPYUID, RFC 4315 section 3). */
export interface StoreTrashed {
  folder: string;
  uid: number;
  /** The trash folder's UIDVALIDITY: another value means its UIDs are void (RFC 3501 section 2.3.1.1). */
  uidValidity?: number;
}

export interface ItemRecord {
  syncKey: string;
  imapUid?: number;
  graphId?: string;
  agreedSeen: boolean;
  pendingCreate: boolean;
  /** Set when the voice message could not be copied (typed reason); nothing is deleted. */
  skipped?: { code: string; message: string };
  /** When the voice message was received (ISO): tells store aging from a wipe. */
  receivedAt?: string;
  /** The Exchange copy was moved to another folder of the mailbox (still kept in step). */
  graphElsewhere?: boolean;
  /** Only this side keeps the message, on purpose (see LinkState.detached). */
  detached?: "imap" | "graph";
  /** Detached "graph" by an Outlook delete whose store original went to the store's trash: where it is. */
  storeTrash?: StoreTrashed;
}

export interface SyncCursors {
  imap?: ImapCursor;
  deltaLink?: string;
  /**
   * Counts over all item records, kept with the cursors so that an incremental run reads only
   * the records its changes name (the mass-delete guard needs `linked`, the fast read check
   * `unread`, the status `skipped`). Absent on state written before they were kept.
   */
  counts?: ItemCounts;
  /** Item rows changed after these cursors were saved (a run stopped midway): the counts are
   *  stale, so the next run reads every record and counts again. */
  countsStale?: boolean;
  /** Set by the state port on load: every record has its index rows (reindexed once, or
   *  written by runs that write them with each record). A run that reads every record
   *  reindexes only when this is absent. */
  indexed?: boolean;
}

export interface ItemCounts {
  /** Records both sides hold in step (not pending, detached or skipped): the guard's "known". */
  linked: number;
  /** Records not skipped whose agreed state is unread (the lamp). */
  unread: number;
  /** Records skipped for a reason the status shows (not by the profile's choice). */
  skipped: number;
}

export interface VoicemailStatePort {
  /** Every record (full runs, and runs whose counts are stale). */
  loadItems(): Promise<ItemRecord[]>;
  /**
   * The records of these sync keys only (point reads): what an incremental run reads. A port
   * without it gets full loads. A row that cannot be read comes back skipped with STATE_CORRUPT.
   */
  loadItemsByKey?(syncKeys: string[]): Promise<ItemRecord[]>;
  /** Sync keys of records by their store UID or Exchange id (vanished messages, removed copies).
   *  The answer may be stale: the caller checks it against the record it then loads. */
  lookupKeys?(q: { uids: number[]; graphIds: string[] }): Promise<{ byUid: Map<number, string>; byGraphId: Map<string, string> }>;
  /** Writes the index rows of records kept before index rows existed, then notes on the partition that it is indexed (`indexed` on load). */
  reindex?(records: ItemRecord[]): Promise<void>;
  /** Writes or replaces one item's record (after its action succeeded). */
  putItem(item: ItemRecord): Promise<void>;
  deleteItem(syncKey: string): Promise<void>;
  loadCursors(): Promise<SyncCursors>;
  /** Saved last, after every action the cursors cover succeeded. */
  saveCursors(cursors: SyncCursors): Promise<void>;
}

// ---- contacts and calendar -------------------------------------------------------------
// What the contacts and calendar executors need from each side and from the state store.
// src/app/contacts.ts and src/app/calendar.ts bind them to the IMAP session (src/imap), the
// Graph adapters (src/graph/contacts.ts, calendar.ts) and the state store (src/state/items.ts).

/** One stored message as the voice store returns it. */
/**
 * The writes a run is about to make, as the store's push and Graph's notifications will report
 * them back (src/state/leases.ts expectEchoes): announced before the writes, so those reports
 * start no run. A store APPEND is announced without its UID (uid 0): the store gives it only in
 * its answer, after its push.
 */
export interface AnnouncedWrites {
  store: Array<{ uid: number; kind: "flags" | "expunge" | "append" }>;
  graph: Array<{ id: string; change: "updated" | "deleted" }>;
}

export interface StoredSource {
  uid: number;
  source: Buffer;
  internalDate?: Date;
}

export interface ContactStorePort {
  changes(since: ImapCursor | undefined): Promise<VoiceChanges>;
  fetchSources(uids: number[]): Promise<StoredSource[]>;
  append(source: Buffer): Promise<number>;
  remove(uid: number): Promise<unknown>;
}

/** An Exchange contact, its fields in the vCard model (src/formats/contactMapping.ts converts). */
export interface GraphContact {
  id: string;
  lastModifiedDateTime?: string;
  fields: ContactFields;
}

export type ContactChanges = DeltaChanges<GraphContact>;

export interface ContactExchangePort {
  changes(deltaLink: string | undefined): Promise<ContactChanges>;
  get(id: string): Promise<GraphContact>;
  create(syncKey: string, fields: ContactFields): Promise<GraphContact>;
  update(id: string, fields: ContactFields): Promise<GraphContact>;
  remove(id: string): Promise<void>;
  findBySyncKey(syncKey: string): Promise<GraphContact | undefined>;
  /** The Exchange contact photo (undefined: none) and setting it. */
  getPhoto(id: string): Promise<Photo | undefined>;
  putPhoto(id: string, photo: Photo): Promise<void>;
  /** The ids of the folder's contacts that have a photo (one listing; src/graph/contacts.ts withPictures). */
  withPictures?(): Promise<Set<string>>;
}

export interface ContactRecord {
  syncKey: string;
  imapUid?: number;
  graphId?: string;
  /** Hash of the store's card (all of it) when both sides last agreed. */
  imapHash?: string;
  /** Hash of the fields both sides hold, as the store had them. */
  imapMapped?: string;
  /** Hash of the Exchange contact's mapped fields when both sides last agreed. */
  graphHash?: string;
  pendingGraphCreate?: boolean;
  skipped?: { code: string; message: string };
  /** Hash of the Exchange contact photo when both sides last agreed ("" for none). */
  graphPhoto?: string;
  /** Exchange's lastModifiedDateTime as our last write or read left it: its echo in delta is no news. */
  graphModified?: string;
  /** Values Exchange could not take (CONTACT_VALUE_REFUSED): left out there, kept on the store. */
  flags?: Array<{ field: string; message: string }>;
}

/** Counts over all records of a kind, kept with its cursors (see SyncCursors.counts). */
export interface RecordCounts {
  /** Contacts: records linked on both sides (the mass-delete guard's "known"); calendar: items on the store. */
  linked: number;
  /** Records skipped with a reason the status shows. */
  skipped: number;
}

/**
 * Whether reading the records a run's changes name by point reads costs less than listing the
 * kind's records. A listing returns up to 1,000 entities per request
 * (https://learn.microsoft.com/en-us/rest/api/storageservices/query-timeout-and-pagination),
 * a point read one: once the point reads would be as many as the records kept, one listing
 * reads no more entities, with a thousandth of the requests. The run after a 5,000-contact
 * first sync pages through its own 5,000 creations: as point reads (an index row and a record
 * each) that was 10,000 Table requests in a row, minutes on Azurite with the lease held and no
 * Graph request, so every run of the link coalesced behind it; as a listing, 5 requests.
 */
export function pointReadsPay(pointReads: number, counts: RecordCounts): boolean {
  return pointReads < counts.linked + counts.skipped;
}

export interface ContactCursors {
  imap?: ImapCursor;
  deltaLink?: string;
  /** Kept so an incremental run reads only the records its changes name; absent on old state. */
  counts?: RecordCounts;
  /** Set by the state port on load: a run stopped between its writes and its cursors. */
  countsStale?: boolean;
}

/**
 * Item records of one kind (contacts, calendar) for one link. The optional members make
 * incremental runs read only what their changes name (the voicemail port's pattern); a port
 * without them gets full loads. A record that cannot be read comes back as
 * `{ syncKey, skipped: { code: "STATE_CORRUPT" } }` (with the UID and id its index rows name).
 */
export interface RecordStatePort<T, C> {
  loadItems(): Promise<T[]>;
  loadItemsByKey?(syncKeys: string[]): Promise<T[]>;
  /** Sync keys of records by their store UID or Exchange id (possibly stale: the caller checks). */
  lookupKeys?(q: { uids: number[]; graphIds: string[] }): Promise<{ byUid: Map<number, string>; byGraphId: Map<string, string> }>;
  /** Writes the index rows of records kept before index rows existed, or written by a run that stopped before its cursors (a full load). */
  reindex?(records: T[]): Promise<void>;
  putItem(item: T): Promise<void>;
  /** Several records at once (the mail copy's batches). */
  putItems(items: T[]): Promise<void>;
  deleteItem(syncKey: string): Promise<void>;
  loadCursors(): Promise<C | undefined>;
  saveCursors(cursors: C): Promise<void>;
}

export interface ConflictRecord {
  syncKey: string;
  at: string;
  /** "contact": an edit/edit conflict; "voicemail-match": adoption found no single partner (copied, nothing merged). */
  kind: "contact" | "voicemail-match" | "contact-match";
  /** The side whose version lost (and is kept here); "none" when nothing was overwritten. */
  loser: "imap" | "graph" | "none";
  /** The losing version, as a vCard; for a match, the candidates and the reason as JSON. */
  content: string;
  /** A display name for the admin (no other content). */
  summary?: string;
}

export interface CalendarChanges extends DeltaChanges<Occurrence> {
  /** Events that could not be read, each with its reason (typed code and message). */
  skipped: Array<{ id: string; code: string; message: string }>;
}

export interface CalendarStorePort {
  append(source: Buffer): Promise<number>;
  remove(uid: number): Promise<unknown>;
  listKeys(): Promise<Map<number, string | undefined>>;
}

export interface CalendarExchangePort {
  changes(window: { start: string; end: string }, deltaLink: string | undefined): Promise<CalendarChanges>;
}
