/**
 * The voicemail sync planner: pure, no I/O, no clock.
 *
 * For every item it compares the voice store (IMAP), Exchange (Graph) and the last values both
 * sides agreed on, and returns the actions that bring them in step (DESIGN.md section 3; the
 * decision table follows vdirsyncer's `_get_actions`, adapted to voicemail rules):
 *   - existence: the voice store is the source of truth for new items; a delete on either
 *     side removes the item on the other ("delete wins" for voice messages);
 *   - read state: a flag changed on one side only is copied to the other; changed on both
 *     sides to different values resolves to read ("read is sticky"), so the lamp never
 *     lights again for a message the user already heard or read.
 * The executor applies actions one by one and commits each item's new state after its
 * action succeeded, so a second plan over the result is empty.
 */

import { massDeleteCheck, type MassDelete, type MassDeleteLimits } from "./massDelete.js";

/** The item as the voice store shows it now. */
export interface ImapSide {
  uid: number;
  seen: boolean;
}

/** The item as Exchange shows it now (in the voicemail folder). */
export interface GraphSide {
  id: string;
  isRead: boolean;
  /** Another product's voicemail matched to this store message (adoption): our key is written on it. */
  foreign?: boolean;
}

/** What the state store remembers about a linked item. */
export interface LinkState {
  /** Read state both sides last agreed on. */
  agreedSeen: boolean;
  imapUid?: number;
  graphId?: string;
  /** When the voice message was received (ms since epoch): tells store aging from a wipe. */
  receivedAt?: number;
  /**
   * Only one side keeps the message, on purpose: a delete the profile does not propagate, a
   * copy archived out of the mailbox, or the Exchange copy left behind in Deleted Items after
   * its store original was removed. The other side is never touched for it again; when the
   * absent side's copy comes back (restored from Deleted Items) the two are linked again.
   */
  detached?: "imap" | "graph";
  /** Detached "graph": the store original is in the store's trash (profile storeDelete "trash"), so a restore can bring it back. */
  inStoreTrash?: boolean;
  /**
   * A create was intended (pending row written) but not confirmed: the Graph copy may or may
   * not exist. The executor must look the sync key up before creating again.
   */
  pendingCreate?: boolean;
}

export interface ItemView {
  syncKey: string;
  link?: LinkState;
  /** Present on the voice store (and of a class this profile copies); undefined when gone. */
  imap?: ImapSide;
  /**
   * Present in the Exchange mailbox: in the voicemail folder, or (with `elsewhere`) moved by the
   * user or a retention policy to another folder of the same mailbox, which keeps its immutable
   * id (https://learn.microsoft.com/en-us/graph/outlook-immutable-id). Undefined when absent.
   */
  graph?: GraphSide & { elsewhere?: boolean };
  /**
   * Why a linked Exchange copy is absent, as the executor found out by looking its id up:
   * "trashed": in Deleted Items or Recoverable Items (a delete, still restorable);
   * "purged": not in the mailbox any more and the profile counts that as a delete;
   * "archived": not in the mailbox any more and the profile says that is the archive mailbox
   * (retention policies move items there; their immutable id changes, so they are lost to us).
   * Undefined: not looked up (treated as a delete, the behaviour before moves were told apart).
   */
  graphLeft?: "trashed" | "purged" | "archived";
}

/** What the profile lets a delete on one side do on the other (never: the other side keeps it). */
export interface PropagateOptions {
  /** An Outlook delete removes the store message (else the store keeps it). */
  deleteOnStore: boolean;
  /** A store delete removes the Exchange copy (else Outlook keeps it: the store ages messages out). */
  deleteInExchange: boolean;
  /**
   * A copy with our key but no row and no store original is left in Outlook (remembered as
   * Outlook's alone) instead of deleted: a link's first sync, where such copies are the
   * history of an earlier link (unlinked with "keep", or a relink to a new extension).
   */
  keepOrphans?: boolean;
}
const PROPAGATE_ALL: PropagateOptions = { deleteOnStore: true, deleteInExchange: true };

export type VoicemailAction =
  | { kind: "createInGraph"; syncKey: string; imapUid: number; seen: boolean; resume: boolean }
  | { kind: "adopt"; syncKey: string; imapUid: number; graphId: string; seen: boolean; setGraphRead?: boolean; setImapSeen?: boolean; writeKey?: boolean }
  | { kind: "setGraphRead"; syncKey: string; graphId: string; read: boolean }
  | { kind: "setImapSeen"; syncKey: string; imapUid: number; seen: boolean }
  | { kind: "deleteInGraph"; syncKey: string; graphId: string }
  | { kind: "deleteInImap"; syncKey: string; imapUid: number; tombstone: boolean }
  | { kind: "detach"; syncKey: string; keep: "imap" | "graph"; graphId?: string; seen?: boolean }
  | { kind: "recordAgreed"; syncKey: string; seen: boolean; imapUid: number; graphId: string }
  | { kind: "restoreInImap"; syncKey: string; graphId: string; seen: boolean }
  | { kind: "forget"; syncKey: string };

export type VoicemailActionKind = VoicemailAction["kind"];

/** Plans one item. */
export function planItem(item: ItemView, opts: PropagateOptions = PROPAGATE_ALL): VoicemailAction[] {
  const { syncKey, link, imap, graph } = item;

  if (!link) {
    if (imap && graph) {
      // Both sides hold the key but we have no row (state lost, or a crash after create and
      // before the row was written), or another product's copy was matched to it (adoption):
      // link them; read is sticky (read wins).
      const seen = imap.seen || graph.isRead;
      return [{ kind: "adopt", syncKey, imapUid: imap.uid, graphId: graph.id, seen, setGraphRead: seen !== graph.isRead || undefined, setImapSeen: seen !== imap.seen || undefined, writeKey: graph.foreign || undefined }];
    }
    // New on the voice store: copy it to Exchange.
    if (imap) return [{ kind: "createInGraph", syncKey, imapUid: imap.uid, seen: imap.seen, resume: false }];
    // Only in Exchange with our key and no row: its voice original is gone; delete wins
    // (except on a first sync: an earlier link's history stays).
    if (graph) return opts.keepOrphans ? [{ kind: "detach", syncKey, keep: "graph", graphId: graph.id, seen: graph.isRead }] : [{ kind: "deleteInGraph", syncKey, graphId: graph.id }];
    return [];
  }

  if (link.pendingCreate && !graph) {
    // Create intended, outcome unknown: resume (the executor looks the key up first).
    if (imap) return [{ kind: "createInGraph", syncKey, imapUid: imap.uid, seen: imap.seen, resume: true }];
    return [{ kind: "forget", syncKey }];
  }

  const relink = (i: ImapSide, g: GraphSide): VoicemailAction[] => {
    const seen = i.seen || g.isRead;
    return [{ kind: "adopt", syncKey, imapUid: i.uid, graphId: g.id, seen, setGraphRead: seen !== g.isRead || undefined, setImapSeen: seen !== i.seen || undefined }];
  };
  if (link.detached === "imap") {
    // The store keeps it alone. Gone there too: forget. Back in Outlook (restored): link again.
    if (!imap) return [{ kind: "forget", syncKey }];
    return graph ? relink(imap, graph) : [];
  }
  if (link.detached === "graph") {
    // Outlook keeps it alone (its store original is gone). A copy still restorable stays
    // remembered, so a restore is not taken for "our copy without original" and deleted again.
    if (!graph) return item.graphLeft === "trashed" ? [] : [{ kind: "forget", syncKey }];
    if (imap) return relink(imap, graph);
    // Restored in Outlook while its store original waits in the store's trash: it goes back too.
    return link.inStoreTrash ? [{ kind: "restoreInImap", syncKey, graphId: graph.id, seen: graph.isRead }] : [];
  }

  if (!imap && !graph) return [{ kind: "forget", syncKey }];
  // Deleted on the voice store: remove the Exchange copy, unless the profile keeps Outlook's.
  if (!imap && graph) return opts.deleteInExchange ? [{ kind: "deleteInGraph", syncKey, graphId: graph.id }] : [{ kind: "detach", syncKey, keep: "graph" }];
  // Gone from the Exchange mailbox. Moves to other folders never get here (the copy is present,
  // `elsewhere`); a delete removes the store message unless the profile keeps it; a copy that
  // went to the archive mailbox is no delete.
  if (imap && !graph) {
    if (item.graphLeft === "archived" || !opts.deleteOnStore) return [{ kind: "detach", syncKey, keep: "imap" }];
    return [{ kind: "deleteInImap", syncKey, imapUid: imap.uid, tombstone: item.graphLeft === "trashed" }];
  }

  const i = imap!;
  const g = graph!;
  if (link.pendingCreate || link.graphId !== g.id || link.imapUid !== i.uid) {
    // The copy was found (resumed create), or an id moved (UIDVALIDITY re-match, Graph id
    // change): record both ids; read is sticky across the gap.
    const seen = i.seen || g.isRead;
    return [{ kind: "adopt", syncKey, imapUid: i.uid, graphId: g.id, seen, setGraphRead: seen !== g.isRead || undefined, setImapSeen: seen !== i.seen || undefined }];
  }

  const imapChanged = i.seen !== link.agreedSeen;
  const graphChanged = g.isRead !== link.agreedSeen;
  if (!imapChanged && !graphChanged) return [];
  if (imapChanged && !graphChanged) return [{ kind: "setGraphRead", syncKey, graphId: g.id, read: i.seen }];
  if (!imapChanged && graphChanged) return [{ kind: "setImapSeen", syncKey, imapUid: i.uid, seen: g.isRead }];
  // Both changed. Same value: nothing to copy, just remember it. Different: read wins.
  if (i.seen === g.isRead) return [{ kind: "recordAgreed", syncKey, seen: i.seen, imapUid: i.uid, graphId: g.id }];
  return i.seen
    ? [{ kind: "setGraphRead", syncKey, graphId: g.id, read: true }]
    : [{ kind: "setImapSeen", syncKey, imapUid: i.uid, seen: true }];
}

export interface PlanLimits extends MassDeleteLimits {
  /** Now (ms since epoch), for the age of messages the store lost. */
  now?: number;
  /**
   * Messages at least this old that the store lost, all of them older than every message it
   * kept, are its own expiry (an aging burst), not a wipe: they pass the guard. Default 7 days.
   */
  agingMinDays?: number;
  propagate?: PropagateOptions;
  /**
   * Linked items left out of `items` because nothing changed for them (an incremental run
   * plans only the items its changes name): present on both sides, they count for the
   * mass-delete guard's "known" and "present". A guard that fires this way is re-checked by the
   * caller with every item (aging needs their UIDs).
   */
  untouchedLinked?: number;
}

export interface Plan {
  actions: VoicemailAction[];
  /** Set when the guard refused the deletes; no delete action is included then. */
  massDelete?: MassDelete;
}

/**
 * Plans every item, then applies the mass-delete guard (vdirsyncer's StorageEmpty and
 * isync's expunge limits): a side that had linked items and now shows none, or a run that
 * would delete more than the allowed share on one side, keeps its deletes back.
 */
export function planVoicemail(items: Iterable<ItemView>, limits: PlanLimits): Plan {
  const actions: VoicemailAction[] = [];
  let linked = limits.untouchedLinked ?? 0;
  let imapPresent = linked;
  let graphPresent = linked;
  // What the store lost (its messages whose Exchange copy is still there) and what it kept.
  const lost: Array<{ uid: number; receivedAt?: number }> = [];
  let keptOldestUid = Infinity;
  for (const item of items) {
    if (item.link && !item.link.pendingCreate && !item.link.detached) {
      linked++;
      if (item.imap) imapPresent++;
      if (item.graph) graphPresent++;
      if (!item.imap && item.graph && item.link.imapUid !== undefined) lost.push({ uid: item.link.imapUid, receivedAt: item.link.receivedAt });
      if (item.imap) keptOldestUid = Math.min(keptOldestUid, item.imap.uid);
    }
    actions.push(...planItem(item, limits.propagate));
  }
  const guard = massDeleteCheck({ linked, imapPresent, graphPresent, graphDeletes: actions.filter((a) => a.kind === "deleteInGraph").length, imapDeletes: actions.filter((a) => a.kind === "deleteInImap").length }, limits);
  if (!guard) return { actions };
  if (guard.side === "graph" && isAgingBurst(lost, keptOldestUid, limits)) return { actions, massDelete: { ...guard, pattern: "aging", refused: false } };
  const blocked: VoicemailActionKind = guard.side === "graph" ? "deleteInGraph" : "deleteInImap";
  return { actions: actions.filter((a) => a.kind !== blocked), massDelete: guard };
}

/**
 * A voice store ages messages out oldest first (retention on the voice system): every message
 * it lost is older than the minimum age, and older than every message it kept. UIDs ascend in
 * order of arrival (RFC 3501 section 2.3.1.1), so "older than every kept one" is "a lower UID
 * than every kept one". A wipe loses new messages too, or everything.
 */
function isAgingBurst(lost: Array<{ uid: number; receivedAt?: number }>, keptOldestUid: number, limits: PlanLimits): boolean {
  if (!lost.length || keptOldestUid === Infinity || limits.now === undefined) return false;
  const minAgeMs = (limits.agingMinDays ?? 7) * 86_400_000;
  return lost.every((l) => l.uid < keptOldestUid && l.receivedAt !== undefined && limits.now! - l.receivedAt >= minAgeMs);
}
