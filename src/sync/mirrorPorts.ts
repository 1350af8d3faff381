/**
 * What the mirror executor (src/sync/mirrorSync.ts) needs from the production folder, the
 * backup folder and the state store. src/imap/mirrorFolder.ts binds the two folders to IMAP,
 * src/state/mirror.ts the state to Table Storage.
 */
import type { MirrorJournalEntry, MirrorMessage, MirrorPair } from "./mirrorPlanner.js";

export interface MirrorFolderCursor {
  uidValidity: number;
  highestModseq?: string;
}

export interface MirrorCursors {
  source?: MirrorFolderCursor;
  target?: MirrorFolderCursor;
  /** Earliest retry of a refused copy (ISO): a run with no change still retries it then. */
  retryAt?: string;
  /** Last completed run (ISO) and how many copies it left to make (status page). */
  lastRunAt?: string;
  backlog?: number;
}

/** The production folder's changes since a cursor (RFC 7162), or everything when `full`. */
export interface MirrorSourceChanges {
  cursor: MirrorFolderCursor;
  full: boolean;
  /** Full: every message. Incremental: messages new or with changed flags since the cursor (with identities). */
  messages: MirrorMessage[];
  /** UIDs expunged since the cursor (QRESYNC VANISHED); empty when full. */
  vanished: number[];
  uidValidityChanged: boolean;
}

export interface MirrorSourcePort {
  /** `forceFull`: list everything whatever the cursor says (verify). */
  changes(since: MirrorFolderCursor | undefined, forceFull: boolean): Promise<MirrorSourceChanges>;
  /** Identities and flags of these UIDs (retries of refused copies). */
  list(uids: number[]): Promise<MirrorMessage[]>;
  /** Full sources of these UIDs, in as few FETCH commands as the batch allows. */
  fetchBodies(uids: number[]): Promise<Map<number, { source: Buffer; internalDate?: Date }>>;
}

export interface MirrorTargetPort {
  /** SELECTs the backup folder (creating it when missing): its UIDVALIDITY and HIGHESTMODSEQ. */
  open(): Promise<MirrorFolderCursor>;
  /** Every message of the backup folder. */
  list(): Promise<MirrorMessage[]>;
  /** The UID of the message with this identity on the backup, if it is there (journal resolution). */
  find(identity: string): Promise<number | undefined>;
  /** APPEND with flags and INTERNALDATE; the UID from UIDPLUS's APPENDUID (RFC 4315), or found by identity. */
  append(source: Buffer, flags: string[], internalDate: Date | undefined, identity: string): Promise<number>;
  /**
   * Several APPENDs in one command (MULTIAPPEND, RFC 3502: all or none are stored), the new UIDs
   * in order from APPENDUID's set (RFC 4315). Optional: without it, one APPEND per message.
   */
  appendMany?(items: Array<{ source: Buffer; flags: string[]; internalDate?: Date; identity: string }>): Promise<number[]>;
  /** Replaces the message's flags (STORE FLAGS, RFC 3501 section 6.4.6). */
  setFlags(uid: number, flags: string[]): Promise<void>;
  /** Removes these messages (\Deleted + UID EXPUNGE, RFC 4315: never other \Deleted messages). */
  expunge(uids: number[]): Promise<void>;
}

export interface MirrorStatePort {
  loadCursors(): Promise<MirrorCursors>;
  /**
   * Every pair and journal row of the folder; or, given `identities`, only those identities'
   * pairs (point reads) and the journal rows: an incremental run reads what its changes name.
   */
  loadPairs(identities?: string[]): Promise<{ pairs: MirrorPair[]; journal: MirrorJournalEntry[] }>;
  /** Written before the APPENDs they name (one transaction per batch). */
  journal(entries: MirrorJournalEntry[]): Promise<void>;
  /** Pair rows written and removed, journal rows cleared, in transactions. */
  commit(c: { put: MirrorPair[]; drop: string[]; clearJournal: string[] }): Promise<void>;
  /** Saved last, after every action the cursors cover succeeded. */
  saveCursors(c: MirrorCursors): Promise<void>;
}

/** Write methods, for the write gate (lease check, crash tests): src/sync/writeGate.ts style. */
export const MIRROR_WRITE_METHODS = {
  target: ["append", "appendMany", "setFlags", "expunge"],
  state: ["journal", "commit", "saveCursors"],
} as const;
