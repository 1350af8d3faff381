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
import type { AnnouncedWrites, ExchangeMailboxPort, ItemCounts, ItemRecord, VoiceChanges, VoiceMailboxPort, VoicemailStatePort, ExchangeChanges } from "./ports.js";
import { planVoicemail, type ItemView, type PlanLimits, type VoicemailAction } from "./voicemailPlanner.js";
import type { MassDelete } from "./massDelete.js";
import { BATCHED_ACTIONS_AT_ONCE, runActionQueue } from "./actionQueue.js";
import { matchByContent, matchByMessageId, openForContent, type AdoptionPair, type AmbiguousMatch, type ForeignItem, type StoreCandidate } from "./adoption.js";
import { readBothSides } from "./bothSides.js";

/** Decides whether a stored message is copied; `copy: false` carries the reason kept in state. */
export type CopySelector = (source: Buffer) => Promise<{ copy: true; receivedAt?: Date } | { copy: false; code: string; message: string }>;

/** How Outlook-side removals count (profile `outlookDelete`). */
export interface OutlookDeleteRules {
  /** A move to Deleted Items is a delete (else only leaving Deleted Items is). */
  deletedItemsIsDelete: boolean;
  /** A copy no longer in the mailbox: purged (a delete) or moved to the archive mailbox (kept). */
  goneFromMailbox: "delete" | "keep";
}

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
  outlookDelete?: OutlookDeleteRules;
  /** The clock (tests); the planner itself has none. */
  now?: () => number;
  /**
   * Adoption: match other products' voicemails in the folder to store messages (first sync,
   * `umconnect resync --adopt`). `describe` reads caller, duration and time from a store
   * message (the voice-message parser); `ambiguous` keeps what was not merged for the admin.
   */
  adoption?: {
    /** Adopt on this run even though it is not the first (`umconnect resync --adopt`). */
    requested?: boolean;
    describe(source: Buffer): Promise<{ callerNumber?: string; durationSeconds?: number; receivedAt?: Date }>;
    ambiguous(a: AmbiguousMatch): Promise<void>;
  };
  /** Plan only: nothing is written on either side or in state (`--dry-run`). */
  dryRun?: boolean;
  /**
   * Told the store writes the run is about to make, before it makes them, so that the store's
   * pushes of them (its echo) start no run. Best effort: a failure only costs an extra run.
   */
  expectEchoes?(writes: AnnouncedWrites): Promise<void>;
  /**
   * True once the run's time is up (src/sync/mailboxRun.ts LeaseGuard.timeUp): the executor
   * takes no new action (after a first round of `parallel`, so every run makes progress), lets
   * those in flight settle and returns with `unfinished` set and its cursors unsaved; the next
   * run resumes from the item rows, as after a crash.
   */
  timeUp?(): boolean;
}

export interface VoicemailSyncReport {
  actions: Record<VoicemailAction["kind"], number>;
  skipped: number;
  imapFull: boolean;
  graphFull: boolean;
  deltaExpired: boolean;
  uidValidityChanged: boolean;
  massDelete?: MassDelete;
  /** Copies found moved out of the voicemail folder (kept, not deleted) in this run. */
  movedAway: number;
  /** Adoption: other products' voicemails matched (by how), and ambiguous cases copied instead. */
  adoption?: { adopted: number; byMessageId: number; byCallerTime: number; ambiguous: AmbiguousMatch[]; foreign: number };
  /** The planned actions (dry runs). */
  planned?: VoicemailAction[];
  /** Items whose read state disagreed between the sides before this run (MWI drift). */
  readDrift: number;
  /** Unread voice items after this run (drives the fast read check). */
  unread: number;
  /** Items recorded as skipped (with a reason) after this run. */
  skippedTotal: number;
  /** Item rows that could not be read (STATE_CORRUPT): left alone, counted as skipped. */
  corrupt: number;
  /** Item records this run read (an incremental run reads those its changes name). */
  itemsRead: number;
  /** Actions left for a follow-up run when the run's time was up (cursors not saved). */
  unfinished?: number;
}

export const emptyCounts = (): VoicemailSyncReport["actions"] => ({
  createInGraph: 0, adopt: 0, setGraphRead: 0, setImapSeen: 0, deleteInGraph: 0, deleteInImap: 0, recordAgreed: 0, forget: 0, detach: 0, restoreInImap: 0,
});

/** Content problems that skip one item (kept visible in state) instead of failing the run. */
const ITEM_ERRORS = new Set(["MIME_MALFORMED", "AUDIO_MISSING", "AUDIO_UNSUPPORTED", "AUDIO_UNDECODABLE", "AUDIO_TOO_LONG", "PAYLOAD_TOO_LARGE", "GRAPH_REQUEST_FAILED"]);

export async function syncVoicemail(deps: VoicemailSyncDeps): Promise<VoicemailSyncReport> {
  const { voice, exchange, state, log } = deps;
  // The saved counts are read on full runs too: a full run counts again, but settles the mark.
  const saved = await state.loadCursors();
  const cursors = deps.mode === "full" ? {} : saved;

  // 1. Both sides' changes, side by side (src/sync/bothSides.ts). On Exchange's side an expired
  // delta token means a full re-match, never a blind re-copy.
  let deltaExpired = false;
  const exchangeChanges = async (): Promise<ExchangeChanges> => {
    try {
      return await exchange.changes(cursors.deltaLink);
    } catch (e) {
      if (!isConnectorError(e, "DELTA_TOKEN_EXPIRED")) throw e;
      deltaExpired = true;
      log.warn("graph.delta.expired", deps.ids);
      return exchange.changes(undefined);
    }
  };
  // The first sync of a link: no cursors saved yet (full runs are asked for, not first). It keys
  // every store message (it has no records yet): the keys are read while Exchange's delta is
  // still paging (thousands of items on a migrated mailbox) instead of after it.
  const firstSync = deps.mode !== "full" && cursors.deltaLink === undefined && cursors.imap === undefined;
  const storeChanges = async () => {
    const vc = await voice.changes(cursors.imap);
    return { vc, keys: firstSync && vc.changed.length ? await voice.syncKeys(vc.changed.map((m) => m.uid)) : undefined };
  };
  const [{ vc, keys: firstKeys }, ec] = await readBothSides(storeChanges, exchangeChanges);

  // 1b. The records to compare with: only those the changes name when both sides answered
  // incrementally and the saved counts hold (memory and Table reads follow the changes, not the
  // mailbox); every record otherwise (full runs, first runs, a run after one that stopped midway).
  const sparse = deps.mode !== "full" && !!saved.counts && !saved.countsStale && !vc.full && !vc.uidValidityChanged && !ec.full;
  let loaded = sparse ? await namedRecords(state, vc, ec, voice) : undefined;
  let records = loaded?.records ?? await state.loadItems();
  // State written before index rows were kept gets its index rows once (a new link's empty
  // partition only its note: from its first record on, each put writes its index rows).
  if (!loaded && !saved.indexed && state.reindex && !deps.dryRun) {
    await state.reindex(records);
    if (records.length) log.info("voicemail.state.reindexed", { ...deps.ids, records: records.length });
  }

  let prepared = await prepare(deps, records, vc, ec, loaded?.keyOf ?? firstKeys, firstSync, sparse ? saved.counts!.linked - records.filter(countsAsLinked).length : undefined);
  if (loaded && (prepared.plan.massDelete || prepared.corrupt.length)) {
    // The guard fired on the counts: decide with every record (the aging rule needs their UIDs).
    // A record that cannot be read: what the counts held for it is unknown, so count them all.
    loaded = undefined;
    records = await state.loadItems();
    prepared = await prepare(deps, records, vc, ec, undefined, firstSync, undefined);
  }
  const { plan, later, views, imapNow, graphNow, incomplete, movedAway, adoption, byKey, corrupt } = prepared;
  const before = new Map(records.map((r) => [r.syncKey, r]));

  // Skipped records whose message left the store are forgotten.
  if (!deps.dryRun) {
    for (const r of records) {
      if (r.skipped && r.skipped.code !== "STATE_CORRUPT" && r.imapUid !== undefined && !imapNow.has(r.syncKey) && (vc.full || vc.vanished.includes(r.imapUid))) {
        await state.deleteItem(r.syncKey);
        byKey.delete(r.syncKey);
      }
    }
  }
  // Where a copy now lives (voicemail folder or another one) is remembered, so that a full run
  // knows to look for it and the status can tell.
  for (const [key, g] of graphNow) {
    const r = byKey.get(key);
    if (r && !deps.dryRun && !r.skipped && !r.detached && r.graphId === g.id && Boolean(r.graphElsewhere) !== Boolean(g.elsewhere)) {
      const next = { ...r, graphElsewhere: g.elsewhere || undefined };
      byKey.set(key, next);
      await state.putItem(next);
    }
  }
  for (const r of corrupt) log.warn("voicemail.state.corrupt", { ...deps.ids, syncKey: r.syncKey, code: "STATE_CORRUPT" });

  const report: VoicemailSyncReport = {
    actions: emptyCounts(), skipped: 0, imapFull: vc.full, graphFull: ec.full, deltaExpired,
    uidValidityChanged: vc.uidValidityChanged, massDelete: plan.massDelete,
    readDrift: readDrift(views),
    unread: 0, corrupt: corrupt.length, itemsRead: records.length,
    skippedTotal: 0,
    movedAway,
    adoption,
  };
  // Adoption's matches by content, planned once every remaining store message is read (beside
  // the apply of the rest, below; a dry run waits for them).
  const planLater = later && (async () => {
    const actions = await later();
    report.readDrift = readDrift(views);
    return actions;
  });
  if (deps.dryRun) return { ...report, planned: [...plan.actions, ...(planLater ? await planLater() : [])] };

  // 3. Apply. Actions touch one item each, so up to `parallel` run at once: twice Graph's 4
  // requests in flight per mailbox (the Graph client enforces that cap), so that IMAP fetches,
  // parsing and state writes of some items overlap the Graph calls of others. The first
  // failure that is not an item problem stops the run once the actions in flight settled.
  const announce = async (actions: VoicemailAction[]) => {
    const echoes = { store: storeWrites(actions), graph: graphWrites(actions) };
    if ((echoes.store.length || echoes.graph.length) && deps.expectEchoes) {
      await deps.expectEchoes(echoes).catch((e: unknown) => log.warn("voicemail.echo.unrecorded", { ...deps.ids, error: ensureConnectorError(e) }));
    }
  };
  await announce(plan.actions);
  const { taken, left } = await runActionQueue(plan.actions, {
    more: planLater?.().then(async (actions) => { await announce(actions); return actions; }),
    parallel: deps.parallel ?? 8,
    // Adoptions, read flags and deletes are one small Graph request each (batched by the
    // client); copies carry audio and stay `parallel` at once.
    light: { is: (a) => a.kind !== "createInGraph" && !(a.kind === "adopt" && incomplete.has(a.graphId)), parallel: BATCHED_ACTIONS_AT_ONCE },
    timeUp: deps.timeUp,
    context: (action) => ({ ...deps.ids, syncKey: action.syncKey }),
    apply: async (action) => {
      if (await apply(action, deps, byKey, incomplete)) report.skipped++;
      else report.actions[action.kind]++;
    },
    // Anything else (transient or not) retries the run later; the cursors stay put.
    itemFailed: async (action, err) => {
      if (!ITEM_ERRORS.has(err.code)) return false;
      await markSkipped(state, byKey, action, err);
      report.skipped++;
      log.warn("voicemail.item.skipped", { ...deps.ids, syncKey: action.syncKey, code: err.code });
      return true;
    },
  });
  if (left) {
    // Time is up: the rest is the next run's (the item rows written so far are its starting point).
    log.info("voicemail.sync.paused", { ...deps.ids, done: taken, unfinished: left });
    return { ...report, unfinished: left, unread: saved.counts?.unread ?? 0, skippedTotal: saved.counts?.skipped ?? 0, itemsRead: records.length };
  }

  // 4. Cursors last. A refused mass delete keeps them back so the deletes are not forgotten.
  if (plan.massDelete && !plan.massDelete.refused) log.warn("voicemail.massDelete.aging", { ...deps.ids, ...plan.massDelete });
  else if (plan.massDelete) {
    const m = plan.massDelete;
    log.error("voicemail.massDelete.refused", { ...deps.ids, ...m });
    const seen = m.pattern === "wipe" ? `the ${m.side === "graph" ? "voice store" : "Exchange folder"} was emptied (a wipe)` : `more than the allowed share at once, not the store's aging of old messages`;
    throw new ConnectorError("MASS_DELETE_REFUSED",
      `refused to delete ${m.deletes} of ${m.known} items on the ${m.side === "graph" ? "Exchange" : "voice store"} side: ${seen}`,
      { ...deps.ids, transient: false });
  }
  const counts = loaded ? countDelta(saved.counts!, before, byKey) : countAll(byKey.values());
  await state.saveCursors({ imap: vc.cursor, deltaLink: ec.deltaLink, counts });
  report.unread = counts.unread;
  report.skippedTotal = counts.skipped;
  report.itemsRead = records.length;
  return report;
}

/**
 * The Exchange writes of a plan as Graph's notifications report them: a PATCH (read state, our
 * key on an adopted item) is "updated", a copy leaving the folder "deleted". A create is not
 * among them: the subscription leaves "created" out (src/app/subscriptions.ts).
 */
function graphWrites(actions: VoicemailAction[]) {
  const out: Array<{ id: string; change: "updated" | "deleted" }> = [];
  for (const a of actions) {
    if (a.kind === "setGraphRead" || (a.kind === "adopt" && (a.setGraphRead || a.writeKey))) out.push({ id: a.graphId, change: "updated" });
    else if (a.kind === "deleteInGraph") out.push({ id: a.graphId, change: "deleted" });
  }
  return out;
}

/** The store writes of a plan as the store's push reports them (an expunge sets \Deleted first). */
function storeWrites(actions: VoicemailAction[]) {
  const out: Array<{ uid: number; kind: "flags" | "expunge" }> = [];
  for (const a of actions) {
    if (a.kind === "setImapSeen" || (a.kind === "adopt" && a.setImapSeen)) out.push({ uid: a.imapUid, kind: "flags" });
    else if (a.kind === "deleteInImap") out.push({ uid: a.imapUid, kind: "flags" }, { uid: a.imapUid, kind: "expunge" });
  }
  return out;
}

/** Items whose two sides disagree on read (adoption merges them, read wins). */
const readDrift = (views: ItemView[]) => views.filter((v) => v.imap && v.graph && v.imap.seen !== v.graph.isRead).length;

/** Records the guard counts as linked (both sides hold them in step). */
const countsAsLinked = (r: ItemRecord) => !r.skipped && !r.pendingCreate && !r.detached;
const countsAsSkipped = (r: ItemRecord) => !!r.skipped && !/^(NOT_COPIED_BY_PROFILE|LOOP_PREVENTED)$/.test(r.skipped.code);
const countsAsUnread = (r: ItemRecord) => !r.skipped && !r.agreedSeen;

function countAll(records: Iterable<ItemRecord>): ItemCounts {
  const c: ItemCounts = { linked: 0, unread: 0, skipped: 0 };
  for (const r of records) {
    if (countsAsLinked(r)) c.linked++;
    if (countsAsUnread(r)) c.unread++;
    if (countsAsSkipped(r)) c.skipped++;
  }
  return c;
}

/** The saved counts moved by what happened to the records this run read (the others did not change). */
function countDelta(saved: ItemCounts, before: Map<string, ItemRecord>, after: Map<string, ItemRecord>): ItemCounts {
  const was = countAll(before.values());
  const is = countAll(after.values());
  const at0 = (n: number) => Math.max(0, n);
  return { linked: at0(saved.linked + is.linked - was.linked), unread: at0(saved.unread + is.unread - was.unread), skipped: at0(saved.skipped + is.skipped - was.skipped) };
}

/**
 * The records an incremental run's changes name: messages whose flags changed (their keys
 * read from the store in one FETCH), messages that vanished and copies removed or changed in
 * Exchange (their keys from the index rows when the change carries only a UID or an id).
 */
async function namedRecords(state: VoicemailStatePort, vc: VoiceChanges, ec: ExchangeChanges, voice: VoiceMailboxPort) {
  const keyOf = vc.changed.length ? await voice.syncKeys(vc.changed.map((m) => m.uid)) : new Map<number, string>();
  const keys = new Set<string>(keyOf.values());
  const unkeyed = ec.upserted.filter((i) => !i.syncKey).map((i) => i.id);
  for (const i of ec.upserted) if (i.syncKey) keys.add(i.syncKey);
  const found = vc.vanished.length || unkeyed.length || ec.removed.length
    ? await state.lookupKeys!({ uids: vc.vanished, graphIds: [...unkeyed, ...ec.removed] })
    : { byUid: new Map<number, string>(), byGraphId: new Map<string, string>() };
  for (const k of found.byUid.values()) keys.add(k);
  for (const k of found.byGraphId.values()) keys.add(k);
  return { records: keys.size ? await state.loadItemsByKey!([...keys]) : [], keyOf };
}

/** Both sides' views of the records, and the plan. `untouchedLinked`: set on incremental runs that read only the named records. */
async function prepare(deps: VoicemailSyncDeps, records: ItemRecord[], vc: VoiceChanges, ec: ExchangeChanges, knownKeys: Map<number, string> | undefined, firstSync: boolean, untouchedLinked: number | undefined) {
  const byKey = new Map(records.map((r) => [r.syncKey, r]));
  const byUid = new Map<number, ItemRecord>();
  const byGraphId = new Map<string, ItemRecord>();
  // A row that cannot be read is left out on both sides: nothing is copied, deleted or changed for it.
  const corrupt = records.filter((r) => r.skipped?.code === "STATE_CORRUPT");
  const corruptKeys = new Set(corrupt.map((r) => r.syncKey));
  for (const r of records) {
    if (r.imapUid !== undefined) byUid.set(r.imapUid, r);
    if (r.graphId !== undefined) byGraphId.set(r.graphId, r);
  }
  const imapNow = await voiceView(vc, records, byUid, deps.voice, knownKeys);
  const graphNow: Map<string, { id: string; isRead: boolean; elsewhere?: boolean }> = exchangeView(ec, records, byGraphId);
  for (const k of corruptKeys) graphNow.delete(k);
  // Copies whose large recording upload was interrupted: finished when they are adopted.
  const incomplete = new Set(ec.upserted.filter((i) => i.incomplete).map((i) => i.id));
  const { graphLeft, movedAway } = await locateLeft(deps, records, graphNow);

  // 2. One view per item. Skipped items stay out of the plan (nothing to sync, nothing deleted).
  const keys = new Set<string>();
  for (const r of records) if (!r.skipped) keys.add(r.syncKey);
  for (const k of imapNow.keys()) if (!byKey.get(k)?.skipped) keys.add(k);
  for (const k of graphNow.keys()) keys.add(k);
  const views: ItemView[] = [...keys].map((syncKey) => {
    const r = byKey.get(syncKey);
    return {
      syncKey,
      link: r && !r.skipped ? { agreedSeen: r.agreedSeen, imapUid: r.imapUid, graphId: r.graphId, pendingCreate: r.pendingCreate, detached: r.detached, inStoreTrash: !!r.storeTrash || undefined, receivedAt: r.receivedAt ? Date.parse(r.receivedAt) : undefined } : undefined,
      imap: imapNow.get(syncKey),
      graph: graphNow.get(syncKey),
      graphLeft: graphLeft.get(syncKey),
    };
  });
  // The first sync of a link (no cursors yet) adopts; later runs only when the admin asks.
  const adopting = deps.adoption && ec.full && (firstSync || deps.adoption.requested) ? await adopt(deps, views, ec, byGraphId) : undefined;
  const limits: PlanLimits = { now: (deps.now ?? Date.now)(), ...deps.limits, untouchedLinked, propagate: { ...(deps.limits.propagate ?? { deleteOnStore: true, deleteInExchange: true }), keepOrphans: firstSync || undefined } };
  // Store messages waiting for adoption's match by content are planned once it is done. They
  // have no link yet, so the mass-delete guard counts nothing of theirs either way.
  const held = adopting?.held ?? new Set<string>();
  const plan = planVoicemail(held.size ? views.filter((v) => !held.has(v.syncKey)) : views, limits);
  const byContent = adopting?.byContent;
  const later = byContent && (async () => {
    await byContent();
    return planVoicemail(views.filter((v) => held.has(v.syncKey)), limits).actions;
  });
  return { plan, later, views, imapNow, graphNow, incomplete, movedAway, adoption: adopting?.report, byKey, corrupt };
}

async function voiceView(vc: VoiceChanges, records: ItemRecord[], byUid: Map<number, ItemRecord>, voice: VoiceMailboxPort, knownKeys?: Map<number, string>) {
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
    // An incremental run that read only the named records has fetched every changed key already.
    const keys = knownKeys ?? await voice.syncKeys(unknown.map((m) => m.uid));
    for (const m of unknown) {
      const key = keys.get(m.uid);
      if (key) now.set(key, { uid: m.uid, seen: m.seen });
    }
  }
  return now;
}

/**
 * Other products' voicemails in the folder (no sync key, a voicemail class or duration) are
 * matched to store messages about to be copied (src/sync/adoption.ts). A pair becomes one view
 * (the planner adopts it: our key written, read merged, read wins); an ambiguous match is left
 * as it is (the store message is copied, the Exchange item untouched) and kept for the admin.
 *
 * Matching by Message-ID needs only the store's headers and is done here. Matching by caller,
 * time and duration needs each remaining message read and parsed (about 0.7 ms a message, and
 * a migrated mailbox has thousands): that is `byContent`, which the run starts beside the apply
 * of everything else. The store messages it decides on (`held`) are planned only once it has.
 */
async function adopt(deps: VoicemailSyncDeps, views: ItemView[], ec: ExchangeChanges, byGraphId: Map<string, ItemRecord>) {
  const foreign: ForeignItem[] = ec.upserted.filter((i) => !i.syncKey && i.foreign && !byGraphId.has(i.id)).map((i) => ({ id: i.id, isRead: i.isRead, ...i.foreign }));
  const fresh = views.filter((v) => v.imap && !v.link && !v.graph);
  const report = { adopted: 0, byMessageId: 0, byCallerTime: 0, ambiguous: [] as AmbiguousMatch[], foreign: foreign.length };
  if (!foreign.length || !fresh.length) return { report };
  const ids = await deps.voice.identities(fresh.map((v) => v.imap!.uid));
  const candidates: StoreCandidate[] = fresh.map((v) => {
    const id = ids.get(v.imap!.uid);
    return { syncKey: v.syncKey, uid: v.imap!.uid, messageId: id?.messageId, receivedAt: id?.date?.getTime() };
  });
  const bySyncKey = new Map(views.map((v) => [v.syncKey, v]));
  const byId = new Map(foreign.map((f) => [f.id, f]));
  const settle = async (found: { pairs: AdoptionPair[]; ambiguous: AmbiguousMatch[] }) => {
    for (const p of found.pairs) {
      bySyncKey.get(p.syncKey)!.graph = { id: p.graphId, isRead: byId.get(p.graphId)!.isRead, foreign: true };
      report.adopted++;
      if (p.how === "message-id") report.byMessageId++; else report.byCallerTime++;
    }
    report.ambiguous.push(...found.ambiguous);
    if (!deps.dryRun) for (const a of found.ambiguous) await deps.adoption!.ambiguous(a);
    if (found.ambiguous.length) deps.log.warn("voicemail.adoption.ambiguous", { ...deps.ids, count: found.ambiguous.length });
  };
  const step1 = matchByMessageId(candidates, foreign);
  await settle(step1);
  const { rest, taken } = step1;
  // Nothing left on one side to pair by content: the rest are copied, nothing to read.
  if (!rest.length || !openForContent(foreign, taken).length) return { report };
  const byContent = async () => {
    // The sources are fetched in batches (one FETCH per batch, not one per message).
    const byUid = new Map(rest.map((c) => [c.uid, c]));
    for (let i = 0; i < rest.length; i += 100) {
      const uids = rest.slice(i, i + 100).map((c) => c.uid);
      const sources = deps.voice.fetchSources ? await deps.voice.fetchSources(uids) : await Promise.all(uids.map(async (uid) => ({ uid, source: await deps.voice.fetchSource(uid) })));
      for (const { uid, source } of sources) {
        const c = byUid.get(uid)!;
        try {
          const d = await deps.adoption!.describe(source);
          Object.assign(c, { callerNumber: d.callerNumber, durationSeconds: d.durationSeconds, receivedAt: d.receivedAt?.getTime() ?? c.receivedAt });
        } catch (e) {
          if (!isConnectorError(e) || e.transient) throw e; // an unreadable message is simply not adopted
        }
      }
    }
    await settle(matchByContent(rest, foreign, taken));
  };
  return { report, held: new Set(rest.map((c) => c.syncKey)), byContent };
}

/**
 * Linked copies absent from the voicemail folder's view are looked up by their immutable id:
 * a move to another folder (the user's, the Archive folder, a retention policy's) is no
 * delete, and keeps the item in step (present, `elsewhere`); Deleted Items and Recoverable
 * Items are deletes (the first per profile); a copy gone from the mailbox was purged or went to
 * the archive mailbox (per profile). On incremental runs only copies the delta reported
 * removed are absent; full runs look every moved copy up again (their read state included).
 */
async function locateLeft(deps: VoicemailSyncDeps, records: ItemRecord[], graphNow: Map<string, { id: string; isRead: boolean; elsewhere?: boolean }>) {
  const graphLeft = new Map<string, "trashed" | "purged" | "archived">();
  const rules = deps.outlookDelete ?? { deletedItemsIsDelete: true, goneFromMailbox: "delete" };
  const missing = records.filter((r) => !r.skipped && !r.pendingCreate && r.graphId !== undefined && r.detached !== "imap" && !graphNow.has(r.syncKey));
  let movedAway = 0;
  if (!missing.length) return { graphLeft, movedAway };
  const found = await deps.exchange.locate(missing.map((r) => r.graphId!));
  for (const r of missing) {
    const f = found.get(r.graphId!);
    if (!f) { graphLeft.set(r.syncKey, rules.goneFromMailbox === "keep" ? "archived" : "purged"); continue; }
    if (f.where === "recoverableItems" || (f.where === "deletedItems" && rules.deletedItemsIsDelete)) { graphLeft.set(r.syncKey, "trashed"); continue; }
    graphNow.set(r.syncKey, { id: r.graphId!, isRead: f.isRead, elsewhere: f.where !== "folder" || undefined });
    if (f.where !== "folder" && !r.graphElsewhere) movedAway++;
  }
  return { graphLeft, movedAway };
}

function exchangeView(ec: ExchangeChanges, records: ItemRecord[], byGraphId: Map<string, ItemRecord>) {
  const now = new Map<string, { id: string; isRead: boolean; elsewhere?: boolean }>();
  // Unchanged copies still hold the agreed values. A copy the store alone keeps is not
  // expected; one Outlook alone keeps may sit in Deleted Items (a tombstone) or in the folder,
  // so locateLeft looks it up: taken for present, a tombstone whose original went to the store's
  // trash would be restored by the next run that names it (a vanished UID, say).
  if (!ec.full) for (const r of records) if (r.graphId !== undefined && !r.detached) now.set(r.syncKey, { id: r.graphId, isRead: r.agreedSeen, elsewhere: r.graphElsewhere });
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
      const receivedAt = choice.receivedAt?.toISOString() ?? byKey.get(a.syncKey)?.receivedAt;
      // Intent before side effect: the pending row carries the key the copy will carry.
      if (!a.resume) await put({ syncKey: a.syncKey, imapUid: a.imapUid, agreedSeen: a.seen, pendingCreate: true, receivedAt });
      const created = await exchange.create({ syncKey: a.syncKey, seen: a.seen, source });
      await put({ syncKey: a.syncKey, imapUid: a.imapUid, graphId: created.id, agreedSeen: a.seen, pendingCreate: false, receivedAt });
      return false;
    }
    case "adopt":
      if (incomplete.has(a.graphId)) await exchange.complete(a.graphId, { syncKey: a.syncKey, seen: a.seen, source: await voice.fetchSource(a.imapUid) });
      if (a.writeKey) await exchange.adopt(a.graphId, a.syncKey, a.setGraphRead ? a.seen : undefined);
      else if (a.setGraphRead) await exchange.setRead(a.graphId, a.seen);
      if (a.setImapSeen) await voice.setSeen(a.imapUid, a.seen);
      await put({ ...byKey.get(a.syncKey), syncKey: a.syncKey, imapUid: a.imapUid, graphId: a.graphId, agreedSeen: a.seen, pendingCreate: false, detached: undefined, skipped: undefined });
      return false;
    case "detach": {
      // One side keeps the message on purpose; the record stays, so it is neither copied
      // again nor taken for a copy without its original.
      const r = byKey.get(a.syncKey) ?? { syncKey: a.syncKey, graphId: a.graphId, agreedSeen: a.seen ?? false, pendingCreate: false };
      await put({ ...r, detached: a.keep, imapUid: a.keep === "imap" ? r.imapUid : undefined });
      return false;
    }
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
    case "deleteInImap": {
      const trashed = await voice.remove(a.imapUid);
      if (a.tombstone) {
        // The Exchange copy is in Deleted Items: remembered until it is purged, so that a
        // restore leaves it in Outlook instead of deleting it again (and, where the store
        // original went to the store's trash, brings that back too).
        await put({ ...byKey.get(a.syncKey)!, imapUid: undefined, detached: "graph", storeTrash: trashed || undefined });
        return false;
      }
      await state.deleteItem(a.syncKey);
      byKey.delete(a.syncKey);
      return false;
    }
    case "restoreInImap": {
      const r = byKey.get(a.syncKey)!;
      const uid = r.storeTrash && voice.restore ? await voice.restore(r.storeTrash) : undefined;
      // Emptied from the store's trash meanwhile: Outlook keeps the message alone.
      if (uid === undefined) { await put({ ...r, storeTrash: undefined }); return false; }
      // MOVE keeps the flags it had when it was deleted; the restored copy's read state wins.
      await voice.setSeen(uid, a.seen);
      await put({ ...r, imapUid: uid, agreedSeen: a.seen, detached: undefined, storeTrash: undefined });
      return false;
    }
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
