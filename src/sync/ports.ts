/**
 * What the voicemail sync needs from each side and from the state store. The sync core
 * depends on these interfaces only; src/sync/adapters.ts binds them to the IMAP adapter
 * (src/imap), the Graph adapter (src/graph) and the state store (src/state).
 */

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
  /** Expunge, or move to the store's trash, as the profile says. */
  remove(uid: number): Promise<void>;
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

export interface ExchangeChanges {
  /** True when this is a full listing (first run or an expired delta token). */
  full: boolean;
  upserted: ExchangeItem[];
  removed: string[];
  deltaLink: string;
}

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
  /** Writes the index rows of records kept before index rows existed (once, by a full load). */
  reindex?(records: ItemRecord[]): Promise<void>;
  /** Writes or replaces one item's record (after its action succeeded). */
  putItem(item: ItemRecord): Promise<void>;
  deleteItem(syncKey: string): Promise<void>;
  loadCursors(): Promise<SyncCursors>;
  /** Saved last, after every action the cursors cover succeeded. */
  saveCursors(cursors: SyncCursors): Promise<void>;
}
