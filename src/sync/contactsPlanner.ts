/**
 * The contacts sync planner: pure, no I/O, no clock. Two-way, with the conflict rules of
 * DESIGN.md section 1 (vdirsyncer's decision table with "latest wins" as its conflict
 * resolution, plus isync's rule that nothing is lost):
 *  - a change on one side only is copied to the other;
 *  - edit/edit with different content: the later edit wins, the loser is kept as a conflict
 *    record the administrator can see (and restore);
 *  - edit/delete: the edit wins, the item is recreated on the side that deleted it;
 *  - identical content on both sides is never a conflict;
 *  - delete on one side and no change on the other: deleted on both;
 *  - a side that lost (almost) all its items does not propagate deletes (mass-delete guard).
 * Content is compared by hashes computed by the executor: `hash` detects change on one side
 * against the value recorded when both sides last agreed, `mapped` (the fields both sides can
 * hold) decides whether the two sides hold the same contact.
 */
import { massDeleteCheck, type MassDelete, type MassDeleteLimits } from "./massDelete.js";

export interface ContactSideView {
  /** IMAP UID or Graph id. */
  ref: string;
  /** Change detection on this side. */
  hash: string;
  /** The fields both sides can hold, for equality across the sides. */
  mapped: string;
  /** When this side last changed it (ISO); decides edit/edit conflicts. */
  modified: string;
}

export interface ContactLink {
  imapUid?: number;
  graphId?: string;
  imapHash?: string;
  graphHash?: string;
  /** A Graph create was intended but not confirmed; the executor looks the key up first. */
  pendingGraphCreate?: boolean;
}

export interface ContactView {
  syncKey: string;
  link?: ContactLink;
  imap?: ContactSideView;
  graph?: ContactSideView;
}

export type ContactAction =
  | { kind: "createInGraph"; syncKey: string; imapUid: number; resume: boolean }
  | { kind: "createInImap"; syncKey: string; graphId: string }
  // `adopted`: the pair had no record (made one by adoption this run): nothing of ours was ever
  // written on the Exchange contact, so the delta's fields are the whole of it.
  | { kind: "updateGraph"; syncKey: string; imapUid: number; graphId: string; conflictLoser?: "graph"; adopted?: true }
  | { kind: "updateImap"; syncKey: string; imapUid: number; graphId: string; conflictLoser?: "imap"; adopted?: true }
  | { kind: "deleteInGraph"; syncKey: string; graphId: string }
  | { kind: "deleteInImap"; syncKey: string; imapUid: number }
  | { kind: "record"; syncKey: string; imapUid: number; graphId: string }
  | { kind: "forget"; syncKey: string };

export type ContactActionKind = ContactAction["kind"];

export function planContact(v: ContactView): ContactAction[] {
  const { syncKey, link, imap, graph } = v;
  const uid = (s: ContactSideView) => Number(s.ref);
  if (!link) {
    if (imap && graph) {
      if (imap.mapped === graph.mapped) return [{ kind: "record", syncKey, imapUid: uid(imap), graphId: graph.ref }];
      return imap.modified >= graph.modified
        ? [{ kind: "updateGraph", syncKey, imapUid: uid(imap), graphId: graph.ref, conflictLoser: "graph", adopted: true }]
        : [{ kind: "updateImap", syncKey, imapUid: uid(imap), graphId: graph.ref, conflictLoser: "imap", adopted: true }];
    }
    if (imap) return [{ kind: "createInGraph", syncKey, imapUid: uid(imap), resume: false }];
    if (graph) return [{ kind: "createInImap", syncKey, graphId: graph.ref }];
    return [];
  }
  if (link.pendingGraphCreate && !graph) {
    if (imap) return [{ kind: "createInGraph", syncKey, imapUid: uid(imap), resume: true }];
    return [{ kind: "forget", syncKey }];
  }
  const imapChanged = imap !== undefined && (imap.hash !== link.imapHash || uid(imap) !== link.imapUid);
  const graphChanged = graph !== undefined && (graph.hash !== link.graphHash || graph.ref !== link.graphId);
  if (!imap && !graph) return [{ kind: "forget", syncKey }];
  if (!imap && graph) {
    // Deleted on the store. Unchanged in Exchange: delete there too; edited there: the edit wins.
    return graphChanged ? [{ kind: "createInImap", syncKey, graphId: graph.ref }] : [{ kind: "deleteInGraph", syncKey, graphId: graph.ref }];
  }
  if (imap && !graph) {
    return imapChanged ? [{ kind: "createInGraph", syncKey, imapUid: uid(imap), resume: false }] : [{ kind: "deleteInImap", syncKey, imapUid: uid(imap) }];
  }
  const i = imap!;
  const g = graph!;
  const ci = i.hash !== link.imapHash;
  const cg = g.hash !== link.graphHash;
  // The store's card changed (perhaps only in properties Exchange keeps in the extras): copy it.
  if (ci && !cg) return [{ kind: "updateGraph", syncKey, imapUid: uid(i), graphId: g.ref }];
  if (cg && !ci) return i.mapped === g.mapped ? [{ kind: "record", syncKey, imapUid: uid(i), graphId: g.ref }] : [{ kind: "updateImap", syncKey, imapUid: uid(i), graphId: g.ref }];
  if (!ci && !cg) return imapChanged || graphChanged ? [{ kind: "record", syncKey, imapUid: uid(i), graphId: g.ref }] : [];
  // Both edited. To the same contact: no conflict (the store's extras are copied along).
  if (i.mapped === g.mapped) return [{ kind: "updateGraph", syncKey, imapUid: uid(i), graphId: g.ref }];
  // Edit/edit: latest wins, the loser is kept.
  return i.modified >= g.modified
    ? [{ kind: "updateGraph", syncKey, imapUid: uid(i), graphId: g.ref, conflictLoser: "graph" }]
    : [{ kind: "updateImap", syncKey, imapUid: uid(i), graphId: g.ref, conflictLoser: "imap" }];
}

export interface ContactPlan {
  actions: ContactAction[];
  massDelete?: MassDelete;
}


/**
 * Plans every item, then holds back deletes on a side whose partner lost too much.
 * `untouchedLinked`: linked items an incremental run did not read (no view: present and
 * unchanged on both sides), counted by the guard as such.
 */
export function planContacts(views: Iterable<ContactView>, limits: MassDeleteLimits, untouchedLinked = 0): ContactPlan {
  const actions: ContactAction[] = [];
  let linked = untouchedLinked, imapPresent = untouchedLinked, graphPresent = untouchedLinked;
  for (const v of views) {
    if (v.link && !v.link.pendingGraphCreate) {
      linked++;
      if (v.imap) imapPresent++;
      if (v.graph) graphPresent++;
    }
    actions.push(...planContact(v));
  }
  const guard = massDeleteCheck({ linked, imapPresent, graphPresent, graphDeletes: actions.filter((a) => a.kind === "deleteInGraph").length, imapDeletes: actions.filter((a) => a.kind === "deleteInImap").length }, limits);
  if (!guard) return { actions };
  const blocked: ContactActionKind = guard.side === "graph" ? "deleteInGraph" : "deleteInImap";
  return { actions: actions.filter((a) => a.kind !== blocked), massDelete: guard };
}
