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
}

/** What the state store remembers about a linked item. */
export interface LinkState {
  /** Read state both sides last agreed on. */
  agreedSeen: boolean;
  imapUid?: number;
  graphId?: string;
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
  /** Present in Exchange's voicemail folder; undefined when gone (deleted or moved away). */
  graph?: GraphSide;
}

export type VoicemailAction =
  | { kind: "createInGraph"; syncKey: string; imapUid: number; seen: boolean; resume: boolean }
  | { kind: "adopt"; syncKey: string; imapUid: number; graphId: string; seen: boolean; setGraphRead?: boolean; setImapSeen?: boolean }
  | { kind: "setGraphRead"; syncKey: string; graphId: string; read: boolean }
  | { kind: "setImapSeen"; syncKey: string; imapUid: number; seen: boolean }
  | { kind: "deleteInGraph"; syncKey: string; graphId: string }
  | { kind: "deleteInImap"; syncKey: string; imapUid: number }
  | { kind: "recordAgreed"; syncKey: string; seen: boolean; imapUid: number; graphId: string }
  | { kind: "forget"; syncKey: string };

export type VoicemailActionKind = VoicemailAction["kind"];

/** Plans one item. */
export function planItem(item: ItemView): VoicemailAction[] {
  const { syncKey, link, imap, graph } = item;

  if (!link) {
    if (imap && graph) {
      // Both sides hold the key but we have no row (state lost, or a crash after create and
      // before the row was written): link them; read is sticky.
      const seen = imap.seen || graph.isRead;
      return [{ kind: "adopt", syncKey, imapUid: imap.uid, graphId: graph.id, seen, setGraphRead: seen !== graph.isRead || undefined, setImapSeen: seen !== imap.seen || undefined }];
    }
    // New on the voice store: copy it to Exchange.
    if (imap) return [{ kind: "createInGraph", syncKey, imapUid: imap.uid, seen: imap.seen, resume: false }];
    // Only in Exchange with our key and no row: its voice original is gone; delete wins.
    if (graph) return [{ kind: "deleteInGraph", syncKey, graphId: graph.id }];
    return [];
  }

  if (link.pendingCreate && !graph) {
    // Create intended, outcome unknown: resume (the executor looks the key up first).
    if (imap) return [{ kind: "createInGraph", syncKey, imapUid: imap.uid, seen: imap.seen, resume: true }];
    return [{ kind: "forget", syncKey }];
  }

  if (!imap && !graph) return [{ kind: "forget", syncKey }];
  // Deleted on the voice store: remove the Exchange copy (moved to Deleted Items).
  if (!imap && graph) return [{ kind: "deleteInGraph", syncKey, graphId: graph.id }];
  // Deleted (or moved out of the folder) in Outlook: remove it from the voice store.
  if (imap && !graph) return [{ kind: "deleteInImap", syncKey, imapUid: imap.uid }];

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

export type PlanLimits = MassDeleteLimits;

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
  let linked = 0;
  let imapPresent = 0;
  let graphPresent = 0;
  for (const item of items) {
    if (item.link && !item.link.pendingCreate) {
      linked++;
      if (item.imap) imapPresent++;
      if (item.graph) graphPresent++;
    }
    actions.push(...planItem(item));
  }
  const guard = massDeleteCheck({ linked, imapPresent, graphPresent, graphDeletes: actions.filter((a) => a.kind === "deleteInGraph").length, imapDeletes: actions.filter((a) => a.kind === "deleteInImap").length }, limits);
  if (!guard) return { actions };
  const blocked: VoicemailActionKind = guard.side === "graph" ? "deleteInGraph" : "deleteInImap";
  return { actions: actions.filter((a) => a.kind !== blocked), massDelete: guard };
}
