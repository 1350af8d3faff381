/**
 * E-mail on the phone, the pure part: which Exchange messages are copied into the voice store,
 * and what each side's changes do to the other (issue 22). No I/O and no clock of its own.
 *
 *  - Copied: new messages in the chosen folders that pass the profile's filters. Never copied:
 *    what umconnect wrote into Exchange (its sync key; voice and fax classes
 *    IPM.Note.Microsoft.Voicemail.* / .Fax.*, MS-OXOUM 2.2.2.1), calendar invites and replies
 *    (IPM.Schedule.Meeting.*, MS-OXOCAL 2.2.6; Graph's eventMessage type), and mail from or to
 *    the voice system's own domain (loop prevention, the same check as the voicemail copy).
 *  - Read state both ways: heard on the phone (\Seen) -> isRead in Outlook and back; when both
 *    sides changed, read wins (as the voicemail sync).
 *  - Deletes: an Outlook delete (the message left the folder) removes the copy; a store delete
 *    removes only the copy ("storeOnly") or also moves the mail to Deleted Items ("both").
 *  - Folder cap: at most `cap` copies in the store folder; the oldest copies go from the store
 *    only (never from Exchange), and are remembered so that they are not copied again.
 */
import crypto from "node:crypto";
import type { FeatureProfile } from "../admin/profiles.js";
import type { GraphMail, MailAddress } from "../formats/emailForPhone.js";
import { ownDomainAddress } from "./voicemailCopy.js";
import type { DeltaChanges } from "./ports.js";

/** An Exchange message as the delta reports it (with what the filters read). */
export interface MailSeen extends GraphMail {
  isRead: boolean;
  replyTo?: MailAddress[];
  /** Graph's `@odata.type` (meeting requests come as #microsoft.graph.eventMessageRequest). */
  odataType?: string;
  /** PidTagMessageClass (0x001A). */
  messageClass?: string;
  /** umconnect's sync key property: the message is one of umconnect's own copies. */
  syncKey?: string;
  /** PidTagMessageSize (0x0E08), bytes. */
  size?: number;
}

export type MailChanges = DeltaChanges<MailSeen>;

/** One copied (or capped) message, as the state store keeps it. */
export interface MailRecord {
  syncKey: string;
  graphId: string;
  /** The copy's UID in the store folder; absent while pending or once the copy is gone. */
  imapUid?: number;
  agreedSeen: boolean;
  /** Written before the APPEND: a crash in between is resolved by the copy's X-UMC-Key. */
  pendingAppend?: boolean;
  receivedAt: string;
  /** The copy is gone from the store on purpose: deleted there ("store", deletes "storeOnly") or over the folder cap ("capped"). */
  gone?: "store" | "capped";
}

export interface StoreMailChanges {
  /** Every message of the folder is listed (first run, no CONDSTORE, UIDVALIDITY change). */
  full: boolean;
  changed: Array<{ uid: number; seen: boolean }>;
  vanished: number[];
}

export type MailAction =
  | { kind: "copy"; syncKey: string; graphId: string; seen: boolean; receivedAt: string; resume?: boolean }
  | { kind: "recordCapped"; syncKey: string; graphId: string; seen: boolean; receivedAt: string }
  | { kind: "setStoreSeen"; syncKey: string; uid: number; seen: boolean }
  | { kind: "setGraphRead"; syncKey: string; graphId: string; read: boolean; setStoreSeen?: number }
  | { kind: "recordAgreed"; syncKey: string; seen: boolean }
  | { kind: "removeFromStore"; syncKey: string; uid: number; reason: "outlook-delete" | "cap" }
  | { kind: "deleteInExchange"; syncKey: string; graphId: string }
  | { kind: "markStoreGone"; syncKey: string }
  | { kind: "forget"; syncKey: string };

export type MailRules = FeatureProfile["emailToPhone"] & {
  loopPreventionDomain?: string;
  /** The mailbox owner's address: its domain is "internal" when no internal domains are set. */
  userAddress?: string;
};

export type MailDecision = { copy: true } | { copy: false; code: "LOOP_PREVENTED" | "NOT_COPIED_BY_PROFILE"; message: string };

/** The mail sync's key for an Exchange message: its immutable id never changes inside the mailbox. */
export const mailSyncKey = (graphId: string) => "m" + crypto.createHash("sha256").update(graphId).digest("base64url").slice(0, 32);

const domainOf = (a?: string) => a?.toLowerCase().split("@")[1];

/** Whether one new Exchange message is copied to the phone. */
export function decideMailCopy(m: MailSeen, rules: MailRules, now: number): MailDecision {
  const cls = (m.messageClass ?? "IPM.Note").toLowerCase();
  if (m.syncKey) return { copy: false, code: "LOOP_PREVENTED", message: "written by umconnect" };
  if (cls.startsWith("ipm.note.microsoft.voicemail") || cls.startsWith("ipm.note.microsoft.fax") || cls.startsWith("ipm.note.microsoft.missed")) return { copy: false, code: "LOOP_PREVENTED", message: `a voice or fax message (${m.messageClass})` };
  if (cls.startsWith("ipm.schedule.") || /eventmessage/i.test(m.odataType ?? "")) return { copy: false, code: "NOT_COPIED_BY_PROFILE", message: "a calendar invite or reply" };
  const addresses = [m.from, ...(m.toRecipients ?? []), ...(m.ccRecipients ?? []), ...(m.replyTo ?? [])].map((a) => a?.address).filter((a): a is string => !!a);
  const own = ownDomainAddress(addresses, rules.loopPreventionDomain);
  if (own) return { copy: false, code: "LOOP_PREVENTED", message: `addressed to or from the voice system's own domain (${own})` };
  const f = rules.filters;
  if (f.unreadOnly && m.isRead) return { copy: false, code: "NOT_COPIED_BY_PROFILE", message: "already read" };
  const received = Date.parse(m.receivedDateTime ?? "");
  if (Number.isFinite(received) && received < now - f.maxAgeDays * 86_400_000) return { copy: false, code: "NOT_COPIED_BY_PROFILE", message: `older than ${f.maxAgeDays} days` };
  if (m.size !== undefined && m.size > f.maxSizeBytes) return { copy: false, code: "NOT_COPIED_BY_PROFILE", message: `larger than ${f.maxSizeBytes} bytes` };
  if (f.internalOnly) {
    const internal = f.internalDomains.length ? f.internalDomains.map((d) => d.toLowerCase().replace(/^@/, "")) : [domainOf(rules.userAddress)].filter((d): d is string => !!d);
    const from = domainOf(m.from?.address);
    if (!from || !internal.includes(from)) return { copy: false, code: "NOT_COPIED_BY_PROFILE", message: "not from an internal sender" };
  }
  return { copy: true };
}

export interface MailPlan {
  actions: MailAction[];
  /** New messages not copied, and why (counted in the report, not kept). */
  notCopied: Array<{ graphId: string; code: string; message: string }>;
}

/**
 * The plan of one run. `graph` holds every folder's changes together (a move between two chosen
 * folders is one message that stays); `store` the store folder's changes.
 */
export function planMail(input: { records: MailRecord[]; graph: { upserted: MailSeen[]; removed: string[] }; store: StoreMailChanges; present?: ReadonlySet<number>; rules: MailRules; now: number }): MailPlan {
  const { records, graph, store, rules, now } = input;
  const actions: MailAction[] = [];
  const notCopied: MailPlan["notCopied"] = [];
  const byGraph = new Map(records.map((r) => [r.graphId, r]));
  const upserted = new Map(graph.upserted.map((m) => [m.id, m]));
  const removed = new Set(graph.removed.filter((id) => !upserted.has(id)));
  const storeSeen = new Map(store.changed.map((c) => [c.uid, c.seen]));
  const vanished = new Set(store.vanished);
  if (store.full && input.present) for (const r of records) if (r.imapUid !== undefined && !input.present.has(r.imapUid)) vanished.add(r.imapUid);

  // Copies that stay in the store after this run, for the cap: [receivedAt, syncKey, existing uid].
  const kept: Array<{ receivedAt: string; syncKey: string; uid?: number; copy?: MailAction & { kind: "copy" }; read?: MailAction }> = [];

  for (const r of records) {
    if (r.pendingAppend) {
      // A copy whose APPEND may or may not have happened (a crash): resumed by its key.
      if (removed.has(r.graphId)) { actions.push({ kind: "forget", syncKey: r.syncKey }); continue; }
      const copy = { kind: "copy" as const, syncKey: r.syncKey, graphId: r.graphId, seen: upserted.get(r.graphId)?.isRead ?? r.agreedSeen, receivedAt: r.receivedAt, resume: true };
      kept.push({ receivedAt: r.receivedAt, syncKey: r.syncKey, copy });
      continue;
    }
    const live = r.imapUid !== undefined && !r.gone;
    if (removed.has(r.graphId)) {
      // Deleted or moved out of the chosen folders in Outlook: the phone no longer offers it.
      // One action per item (actions run in parallel): the removal forgets the record once done.
      if (live && !vanished.has(r.imapUid!)) actions.push({ kind: "removeFromStore", syncKey: r.syncKey, uid: r.imapUid!, reason: "outlook-delete" });
      else actions.push({ kind: "forget", syncKey: r.syncKey });
      continue;
    }
    if (!live) continue; // gone from the store on purpose: nothing to keep in step
    const uid = r.imapUid!;
    if (vanished.has(uid)) {
      if (rules.deletes === "both") actions.push({ kind: "deleteInExchange", syncKey: r.syncKey, graphId: r.graphId });
      else actions.push({ kind: "markStoreGone", syncKey: r.syncKey });
      continue;
    }
    const g = upserted.get(r.graphId)?.isRead;
    const s = storeSeen.get(uid);
    const graphChanged = g !== undefined && g !== r.agreedSeen;
    const storeChanged = s !== undefined && s !== r.agreedSeen;
    let read: MailAction | undefined;
    if (graphChanged && storeChanged && g === s) read = { kind: "recordAgreed", syncKey: r.syncKey, seen: g! };
    else if (graphChanged && storeChanged) read = { kind: "setGraphRead", syncKey: r.syncKey, graphId: r.graphId, read: true, setStoreSeen: uid }; // read wins
    else if (graphChanged) read = { kind: "setStoreSeen", syncKey: r.syncKey, uid, seen: g! };
    else if (storeChanged) read = { kind: "setGraphRead", syncKey: r.syncKey, graphId: r.graphId, read: s! };
    kept.push({ receivedAt: r.receivedAt, syncKey: r.syncKey, uid, read });
  }

  for (const m of graph.upserted) {
    if (byGraph.has(m.id)) continue;
    const d = decideMailCopy(m, rules, now);
    if (!d.copy) { notCopied.push({ graphId: m.id, code: d.code, message: d.message }); continue; }
    const receivedAt = m.receivedDateTime && Number.isFinite(Date.parse(m.receivedDateTime)) ? new Date(m.receivedDateTime).toISOString() : new Date(now).toISOString();
    kept.push({ receivedAt, syncKey: mailSyncKey(m.id), copy: { kind: "copy", syncKey: mailSyncKey(m.id), graphId: m.id, seen: m.isRead, receivedAt } });
  }

  // The folder cap: the newest `cap` copies stay; older ones leave the store (only the store).
  kept.sort((a, b) => b.receivedAt.localeCompare(a.receivedAt) || a.syncKey.localeCompare(b.syncKey));
  kept.forEach((k, i) => {
    const over = i >= rules.storeFolderCap;
    // A resumed copy may be in the store already: it is finished, and a later run caps it.
    if (k.copy && (!over || k.copy.resume)) actions.push(k.copy);
    else if (k.copy && over) actions.push({ kind: "recordCapped", syncKey: k.syncKey, graphId: k.copy.graphId, seen: k.copy.seen, receivedAt: k.receivedAt });
    else if (over && k.uid !== undefined) actions.push({ kind: "removeFromStore", syncKey: k.syncKey, uid: k.uid, reason: "cap" });
    else if (k.read) actions.push(k.read);
  });
  return { actions, notCopied };
}
