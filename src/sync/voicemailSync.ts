/**
 * The voicemail sync executor: one run for one linked mailbox.
 *
 * Order is important (DESIGN.md section 3, isync's journal discipline):
 *  1. read both sides' changes since the saved cursors (CONDSTORE/QRESYNC, Graph delta);
 *  2. build one view per item from the changes plus the last agreed values, and plan (pure);
 *  3. apply actions one by one; a create writes its pending row (with the sync key) BEFORE
 *     the Graph create, and a resumed create looks the key up before creating again, so a
 *     crash at any point neither duplicates nor loses;
 *  4. save the cursors LAST, and only when every action they cover is settled.
 * The caller holds the mailbox lease for the whole run.
 */
import { ConnectorError, ensureConnectorError, isConnectorError } from "../errors.js";
import type { Logger } from "../log.js";
import type { ExchangeMailboxPort, ItemRecord, VoiceChanges, VoiceMailboxPort, VoicemailStatePort, ExchangeChanges } from "./ports.js";
import { planVoicemail, type ItemView, type PlanLimits, type VoicemailAction } from "./voicemailPlanner.js";

/** Decides whether a stored message is copied; `copy: false` carries the reason kept in state. */
export type CopySelector = (source: Buffer) => Promise<{ copy: true } | { copy: false; code: string; message: string }>;

export interface VoicemailSyncDeps {
  voice: VoiceMailboxPort;
  exchange: ExchangeMailboxPort;
  state: VoicemailStatePort;
  select: CopySelector;
  limits: PlanLimits;
  log: Logger;
  ids: { tenantId: string; mailboxId: string };
  /**
   * "full" ignores the cursors and lists both sides completely (reconcile safety net); every
   * action it still finds is drift the incremental path missed, counted in the report.
   */
  mode?: "incremental" | "full";
  /** Actions applied at once (default 8: twice Graph's per-mailbox concurrency). */
  parallel?: number;
}

export interface VoicemailSyncReport {
  actions: Record<VoicemailAction["kind"], number>;
  skipped: number;
  imapFull: boolean;
  graphFull: boolean;
  deltaExpired: boolean;
  uidValidityChanged: boolean;
  massDelete?: { side: "imap" | "graph"; deletes: number; known: number; emptied: boolean };
  /** Items whose read state disagreed between the sides before this run (MWI drift). */
  readDrift: number;
  /** Unread voice items after this run (drives the fast read check). */
  unread: number;
  /** Items recorded as skipped (with a reason) after this run. */
  skippedTotal: number;
}

const emptyCounts = (): VoicemailSyncReport["actions"] => ({
  createInGraph: 0, adopt: 0, setGraphRead: 0, setImapSeen: 0, deleteInGraph: 0, deleteInImap: 0, recordAgreed: 0, forget: 0,
});

/** Content problems that skip one item (kept visible in state) instead of failing the run. */
const ITEM_ERRORS = new Set(["MIME_MALFORMED", "AUDIO_MISSING", "AUDIO_UNSUPPORTED", "AUDIO_UNDECODABLE", "AUDIO_TOO_LONG", "PAYLOAD_TOO_LARGE", "GRAPH_REQUEST_FAILED"]);

export async function syncVoicemail(deps: VoicemailSyncDeps): Promise<VoicemailSyncReport> {
  const { voice, exchange, state, log } = deps;
  const records = await state.loadItems();
  const cursors = deps.mode === "full" ? {} : await state.loadCursors();
  const byKey = new Map(records.map((r) => [r.syncKey, r]));
  const byUid = new Map<number, ItemRecord>();
  const byGraphId = new Map<string, ItemRecord>();
  for (const r of records) {
    if (r.imapUid !== undefined) byUid.set(r.imapUid, r);
    if (r.graphId !== undefined) byGraphId.set(r.graphId, r);
  }

  // 1a. Voice store side.
  const vc = await voice.changes(cursors.imap);
  const imapNow = await voiceView(vc, records, byUid, voice);

  // 1b. Exchange side; an expired delta token means a full re-match, never a blind re-copy.
  let deltaExpired = false;
  let ec: ExchangeChanges;
  try {
    ec = await exchange.changes(cursors.deltaLink);
  } catch (e) {
    if (!isConnectorError(e, "DELTA_TOKEN_EXPIRED")) throw e;
    deltaExpired = true;
    log.warn("graph.delta.expired", deps.ids);
    ec = await exchange.changes(undefined);
  }
  const graphNow = exchangeView(ec, records, byGraphId);
  // Copies whose large recording upload was interrupted: finished when they are adopted.
  const incomplete = new Set(ec.upserted.filter((i) => i.incomplete).map((i) => i.id));

  // 2. One view per item. Skipped items stay out of the plan (nothing to sync, nothing deleted).
  const keys = new Set<string>();
  for (const r of records) if (!r.skipped) keys.add(r.syncKey);
  for (const k of imapNow.keys()) if (!byKey.get(k)?.skipped) keys.add(k);
  for (const k of graphNow.keys()) keys.add(k);
  const views: ItemView[] = [...keys].map((syncKey) => {
    const r = byKey.get(syncKey);
    return {
      syncKey,
      link: r && !r.skipped ? { agreedSeen: r.agreedSeen, imapUid: r.imapUid, graphId: r.graphId, pendingCreate: r.pendingCreate } : undefined,
      imap: imapNow.get(syncKey),
      graph: graphNow.get(syncKey),
    };
  });
  // Skipped records whose message left the store are forgotten.
  for (const r of records) if (r.skipped && r.imapUid !== undefined && !imapNow.has(r.syncKey) && (vc.full || vc.vanished.includes(r.imapUid))) await state.deleteItem(r.syncKey);

  const plan = planVoicemail(views, deps.limits);
  const report: VoicemailSyncReport = {
    actions: emptyCounts(), skipped: 0, imapFull: vc.full, graphFull: ec.full, deltaExpired,
    uidValidityChanged: vc.uidValidityChanged, massDelete: plan.massDelete,
    readDrift: views.filter((v) => v.imap && v.graph && v.imap.seen !== v.graph.isRead).length,
    unread: 0,
    skippedTotal: 0,
  };

  // 3. Apply. Actions touch one item each, so up to `parallel` run at once: twice Graph's 4
  // requests in flight per mailbox (the Graph client enforces that cap), so that IMAP fetches,
  // parsing and state writes of some items overlap the Graph calls of others. The first
  // failure that is not an item problem stops the run once the actions in flight settled.
  const queue = [...plan.actions];
  let fatal: ConnectorError | undefined;
  const worker = async () => {
    for (let action = queue.shift(); action && !fatal; action = queue.shift()) {
      try {
        const skipped = await apply(action, deps, byKey, incomplete);
        if (skipped) report.skipped++;
        else report.actions[action.kind]++;
      } catch (e) {
        const err = ensureConnectorError(e, "INTERNAL", { ...deps.ids, syncKey: action.syncKey });
        if (err.transient || !ITEM_ERRORS.has(err.code)) { fatal ??= err; return; } // retry the run later; cursors stay put
        await markSkipped(state, byKey, action, err);
        report.skipped++;
        log.warn("voicemail.item.skipped", { ...deps.ids, syncKey: action.syncKey, code: err.code });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(deps.parallel ?? 8, queue.length) }, worker));
  if (fatal) throw fatal;

  // 4. Cursors last. A refused mass delete keeps them back so the deletes are not forgotten.
  if (plan.massDelete) {
    log.error("voicemail.massDelete.refused", { ...deps.ids, ...plan.massDelete });
    throw new ConnectorError("MASS_DELETE_REFUSED",
      `refused to delete ${plan.massDelete.deletes} of ${plan.massDelete.known} items on the ${plan.massDelete.side === "graph" ? "Exchange" : "voice store"} side`,
      { ...deps.ids, transient: false });
  }
  await state.saveCursors({ imap: vc.cursor, deltaLink: ec.deltaLink });
  for (const r of byKey.values()) {
    if (r.skipped) { if (!/^(NOT_COPIED_BY_PROFILE|LOOP_PREVENTED)$/.test(r.skipped.code)) report.skippedTotal++; }
    else if (!r.agreedSeen) report.unread++;
  }
  return report;
}

async function voiceView(vc: VoiceChanges, records: ItemRecord[], byUid: Map<number, ItemRecord>, voice: VoiceMailboxPort) {
  const now = new Map<string, { uid: number; seen: boolean }>();
  const full = vc.full || vc.uidValidityChanged;
  if (!full) {
    // Unchanged messages still hold the values both sides last agreed on.
    for (const r of records) if (r.imapUid !== undefined) now.set(r.syncKey, { uid: r.imapUid, seen: r.agreedSeen });
    for (const uid of vc.vanished) { const r = byUid.get(uid); if (r) now.delete(r.syncKey); }
  }
  const unknown: Array<{ uid: number; seen: boolean }> = [];
  for (const m of vc.changed) {
    // After a UIDVALIDITY change no stored UID means anything: every message is re-keyed.
    const r = vc.uidValidityChanged ? undefined : byUid.get(m.uid);
    if (r) now.set(r.syncKey, { uid: m.uid, seen: m.seen });
    else unknown.push(m);
  }
  if (unknown.length) {
    const keys = await voice.syncKeys(unknown.map((m) => m.uid));
    for (const m of unknown) {
      const key = keys.get(m.uid);
      if (key) now.set(key, { uid: m.uid, seen: m.seen });
    }
  }
  return now;
}

function exchangeView(ec: ExchangeChanges, records: ItemRecord[], byGraphId: Map<string, ItemRecord>) {
  const now = new Map<string, { id: string; isRead: boolean }>();
  if (!ec.full) for (const r of records) if (r.graphId !== undefined) now.set(r.syncKey, { id: r.graphId, isRead: r.agreedSeen });
  for (const id of ec.removed) {
    const r = byGraphId.get(id);
    if (r && now.get(r.syncKey)?.id === id) now.delete(r.syncKey);
  }
  for (const item of ec.upserted) {
    // Mail we did not create has no sync key and is none of our business.
    const key = item.syncKey ?? byGraphId.get(item.id)?.syncKey;
    if (key) now.set(key, { id: item.id, isRead: item.isRead });
  }
  return now;
}

/** Applies one action; returns true when the item was skipped by the selector. */
async function apply(a: VoicemailAction, deps: VoicemailSyncDeps, byKey: Map<string, ItemRecord>, incomplete: ReadonlySet<string>): Promise<boolean> {
  const { voice, exchange, state } = deps;
  const put = async (r: ItemRecord) => { byKey.set(r.syncKey, r); await state.putItem(r); };
  switch (a.kind) {
    case "createInGraph": {
      if (a.resume) {
        const found = await exchange.findBySyncKey(a.syncKey);
        if (found?.incomplete) await exchange.complete(found.id, { syncKey: a.syncKey, seen: a.seen, source: await voice.fetchSource(a.imapUid) });
        if (found) {
          await put({ syncKey: a.syncKey, imapUid: a.imapUid, graphId: found.id, agreedSeen: found.isRead, pendingCreate: false });
          if (found.isRead !== a.seen) await settleRead(deps, a.syncKey, a.imapUid, found, a.seen, put);
          return false;
        }
      }
      const source = await voice.fetchSource(a.imapUid);
      const choice = await deps.select(source);
      if (!choice.copy) {
        await put({ syncKey: a.syncKey, imapUid: a.imapUid, agreedSeen: a.seen, pendingCreate: false, skipped: { code: choice.code, message: choice.message } });
        return true;
      }
      // Intent before side effect: the pending row carries the key the copy will carry.
      if (!a.resume) await put({ syncKey: a.syncKey, imapUid: a.imapUid, agreedSeen: a.seen, pendingCreate: true });
      const created = await exchange.create({ syncKey: a.syncKey, seen: a.seen, source });
      await put({ syncKey: a.syncKey, imapUid: a.imapUid, graphId: created.id, agreedSeen: a.seen, pendingCreate: false });
      return false;
    }
    case "adopt":
      if (incomplete.has(a.graphId)) await exchange.complete(a.graphId, { syncKey: a.syncKey, seen: a.seen, source: await voice.fetchSource(a.imapUid) });
      if (a.setGraphRead) await exchange.setRead(a.graphId, a.seen);
      if (a.setImapSeen) await voice.setSeen(a.imapUid, a.seen);
      await put({ syncKey: a.syncKey, imapUid: a.imapUid, graphId: a.graphId, agreedSeen: a.seen, pendingCreate: false });
      return false;
    case "setGraphRead":
      await exchange.setRead(a.graphId, a.read);
      await put({ ...byKey.get(a.syncKey)!, agreedSeen: a.read });
      return false;
    case "setImapSeen":
      await voice.setSeen(a.imapUid, a.seen);
      await put({ ...byKey.get(a.syncKey)!, agreedSeen: a.seen });
      return false;
    case "recordAgreed":
      await put({ ...byKey.get(a.syncKey)!, agreedSeen: a.seen });
      return false;
    case "deleteInGraph":
      await ignoreNotFound(exchange.remove(a.graphId));
      await state.deleteItem(a.syncKey);
      byKey.delete(a.syncKey);
      return false;
    case "deleteInImap":
      await voice.remove(a.imapUid);
      await state.deleteItem(a.syncKey);
      byKey.delete(a.syncKey);
      return false;
    case "forget":
      await state.deleteItem(a.syncKey);
      byKey.delete(a.syncKey);
      return false;
  }
}

/** A resumed create found the copy with another read state: read is sticky. */
async function settleRead(deps: VoicemailSyncDeps, syncKey: string, imapUid: number, found: { id: string; isRead: boolean }, seen: boolean, put: (r: ItemRecord) => Promise<void>) {
  if (seen && !found.isRead) await deps.exchange.setRead(found.id, true);
  if (!seen && found.isRead) await deps.voice.setSeen(imapUid, true);
  await put({ syncKey, imapUid, graphId: found.id, agreedSeen: true, pendingCreate: false });
}

async function ignoreNotFound(p: Promise<void>) {
  try { await p; } catch (e) { if (!isConnectorError(e, "GRAPH_NOT_FOUND")) throw e; }
}

async function markSkipped(state: VoicemailStatePort, byKey: Map<string, ItemRecord>, a: VoicemailAction, err: ConnectorError) {
  const prev = byKey.get(a.syncKey);
  const imapUid = "imapUid" in a ? a.imapUid : prev?.imapUid;
  const rec: ItemRecord = { ...(prev ?? { syncKey: a.syncKey, agreedSeen: false, pendingCreate: false }), imapUid, pendingCreate: false, skipped: { code: err.code, message: err.message } };
  byKey.set(a.syncKey, rec);
  await state.putItem(rec);
}
