/**
 * The contacts sync executor: one run for one linked mailbox, two-way between the voice
 * store's contacts folder (one vCard per message) and an Exchange contact folder.
 *
 * Same shape and discipline as the voicemail executor (DESIGN.md section 3):
 *  1. read both sides' changes since the saved cursors (src/sync/contactsView.ts);
 *  2. resolve Graph creates a crashed run left pending (look the sync key up), then plan
 *     (pure: src/sync/contactsPlanner.ts);
 *  3. apply actions (src/sync/contactsApply.ts);
 *  4. save the cursors last.
 * It talks to the store, Exchange and the state only through the ports of src/sync/ports.ts.
 */
import { ConnectorError, ensureConnectorError, isConnectorError } from "../errors.js";
import type { Logger } from "../log.js";
import { keyOfCard, keyOfGraph, mappedHash, readCard, type StoreCard } from "./contactCards.js";
import { applyContactAction, finishReplaced } from "./contactsApply.js";
import { BATCHED_ACTIONS_AT_ONCE, runActionQueue, SMALL_ITEM_ACTIONS_AT_ONCE } from "./actionQueue.js";
import { adoptContacts, contactViews, fetchNew, ITEM_ERRORS, readExchangeSide, readStoreSide, setAsideCorrupt, unknownUids } from "./contactsView.js";
import { planContacts, type ContactAction, type ContactPlan, type ContactSideView } from "./contactsPlanner.js";
import type { AnnouncedWrites, ConflictRecord, ContactChanges, ContactCursors, ContactExchangePort, ContactRecord, ContactStorePort, GraphContact, RecordCounts, RecordStatePort, StoredSource, VoiceChanges } from "./ports.js";
import { pointReadsPay } from "./ports.js";
import { readBothSides } from "./bothSides.js";

export type { ContactCursors, ContactExchangePort, ContactRecord, ContactStorePort } from "./ports.js";
export { mappedHash, storeHash } from "./contactCards.js";

export interface ContactsSyncDeps {
  store: ContactStorePort;
  exchange: ContactExchangePort;
  state: RecordStatePort<ContactRecord, ContactCursors>;
  putConflict(c: ConflictRecord): Promise<void>;
  limits: { massDeleteMaxShare: number; massDeleteOverride?: boolean };
  log: Logger;
  ids: { tenantId: string; mailboxId: string };
  mode?: "incremental" | "full";
  parallel?: number;
  /** Plan only: nothing is written on either side or in state (`resync --adopt --dry-run`). */
  dryRun?: boolean;
  /** The run's time is up (as in src/sync/voicemailSync.ts): no new action after a first round; the rest is a follow-up's. */
  timeUp?(): boolean;
  /** Announces the run's writes before it makes them, so their echoes start no run (src/sync/ports.ts AnnouncedWrites). */
  expectEchoes?(writes: AnnouncedWrites): Promise<void>;
}

export interface ContactsSyncReport {
  actions: Record<ContactAction["kind"], number>;
  /** Contacts found on both sides before they were linked, made one (adoption). */
  adopted?: number;
  conflicts: number;
  duplicatesRemoved: number;
  skipped: number;
  skippedTotal: number;
  /** Contacts written to Exchange without a value it would refuse (each flagged on its record). */
  flagged: number;
  massDelete?: { side: "imap" | "graph"; deletes: number; known: number; emptied: boolean };
  deltaExpired: boolean;
  /** Records that could not be read (STATE_CORRUPT): left alone, counted as skipped. */
  corrupt: number;
  /** Records this run read (an incremental run reads those its changes name). */
  itemsRead: number;
  /** Adoption: store cards and Exchange contacts made one, and ambiguous ones (copied, listed). */
  adoption?: { pairs: Array<{ storeKey: string; graphKey: string }>; ambiguous: Array<{ storeKey: string; candidates: string[] }> };
  /** The planned actions (dry runs). */
  planned?: ContactAction[];
  /** Actions left for a follow-up run when the run's time was up (cursors not saved). */
  unfinished?: number;
}

/** What one run knows: the records it read, both sides' views, and what it has done. */
export interface ContactsRun {
  deps: ContactsSyncDeps;
  byKey: Map<string, ContactRecord>;
  byUid: Map<number, ContactRecord>;
  byGraphId: Map<string, ContactRecord>;
  imapNow: Map<string, ContactSideView>;
  graphNow: Map<string, ContactSideView>;
  /** New store cards read this run, by UID. */
  cards: Map<number, StoreCard>;
  /** Exchange contacts the delta returned, by id. */
  graphFields: Map<string, GraphContact>;
  /** Older store cards of a key another card holds (removed after the actions). */
  duplicates: number[];
  /**
   * Cards replaced by a new one this run (updateImap): the old card's UID and the record that
   * names the new one, removed and written in groups (src/sync/contactsApply.ts cardReplaced).
   */
  replaced: Array<{ uid: number; record: ContactRecord }>;
  /** Exchange contacts that have a photo, when the run listed them (picturesFor); otherwise each photo is asked for. */
  pictures?: Set<string>;
  /** A group of replaced cards being removed beside the actions (cardReplaced). */
  flushing?: Promise<void>;
  report: ContactsSyncReport;
  put(r: ContactRecord): Promise<void>;
  drop(key: string): Promise<void>;
}

const emptyCounts = (): ContactsSyncReport["actions"] => ({ createInGraph: 0, createInImap: 0, updateGraph: 0, updateImap: 0, deleteInGraph: 0, deleteInImap: 0, record: 0, forget: 0 });

export async function syncContacts(deps: ContactsSyncDeps): Promise<ContactsSyncReport> {
  const run = newRun(deps);
  const saved: ContactCursors = (await deps.state.loadCursors()) ?? {};
  const cursors: ContactCursors = deps.mode === "full" ? {} : saved;

  // 1. Both sides' changes, then the records they name (every record on full runs).
  const [vc, ec] = await readBothSides(() => deps.store.changes(cursors.imap), () => exchangeChanges(run, cursors.deltaLink));
  // Point reads while they cost less than a listing: up to two per change (its index row, its record).
  const named = vc.changed.length + vc.vanished.length + ec.upserted.length + ec.removed.length;
  const sparse = deps.mode !== "full" && !!saved.counts && !saved.countsStale && !vc.full && !vc.uidValidityChanged && !ec.full && !!deps.state.loadItemsByKey && !!deps.state.lookupKeys
    && pointReadsPay(2 * named, saved.counts);
  const fresh = sparse ? await loadNamed(run, vc, ec) : await loadAll(run, vc, !saved.counts || !!saved.countsStale);
  const before = new Map(run.byKey);
  await resolvePending(run);
  await readStoreSide(run, vc, fresh);
  await readExchangeSide(run, ec);
  const corrupt = setAsideCorrupt(run);
  await adopt(run);

  // 2. Plan (pure). Linked items the run did not read count for the mass-delete guard.
  const untouched = sparse ? saved.counts!.linked - countRecords(before.values()).linked : 0;
  const plan = planContacts(contactViews(run), deps.limits, untouched);
  Object.assign(run.report, { massDelete: plan.massDelete, corrupt, itemsRead: before.size });
  if (deps.dryRun) return { ...run.report, planned: plan.actions };

  // 3. Apply. When the run's time is up the rest is the next run's (it resumes from the records).
  const echoes = contactEchoes(plan.actions);
  if (echoes && deps.expectEchoes) {
    await deps.expectEchoes(echoes).catch((e: unknown) => deps.log.warn("contacts.echo.unrecorded", { ...deps.ids, error: ensureConnectorError(e) }));
  }
  run.pictures = await picturesFor(run, plan.actions);
  let unfinished: number;
  try {
    unfinished = await applyAll(run, plan.actions);
  } catch (e) {
    // Nothing of this run may still be writing when it reports its failure (the lease ends then).
    await run.flushing?.catch(() => undefined);
    throw e;
  }
  await finishReplaced(run);
  if (unfinished) {
    deps.log.info("contacts.sync.paused", { ...deps.ids, unfinished });
    return { ...run.report, unfinished, skippedTotal: saved.counts?.skipped ?? 0 };
  }
  for (const uid of new Set(run.duplicates)) { await deps.store.remove(uid); run.report.duplicatesRemoved++; }

  // 4. Cursors last. A run that met an unreadable record leaves no counts: the next one counts again.
  refuseMassDelete(deps, plan);
  const counts = sparse ? countDelta(saved.counts!, before, run.byKey) : countRecords(run.byKey.values());
  await deps.state.saveCursors({ imap: vc.cursor, deltaLink: ec.deltaLink, ...(sparse && corrupt ? {} : { counts }) });
  run.report.skippedTotal = counts.skipped;
  return run.report;
}

/** Every record (full runs, first runs, a run after one that stopped midway), and the new store messages. */
async function loadAll(run: ContactsRun, vc: VoiceChanges, reindex: boolean): Promise<StoredSource[]> {
  const records = await run.deps.state.loadItems();
  // State written before index rows and counts were kept gets its index rows once, and so do
  // the records of a run that stopped before its cursors (a full run writes its index rows last).
  if (reindex && records.length && run.deps.state.reindex && !run.deps.dryRun) await run.deps.state.reindex(records);
  addRecords(run, records);
  return fetchNew(run, unknownUids(run, vc));
}

/**
 * The records an incremental run's changes name (point reads): those holding the changed,
 * vanished, updated or removed UIDs and ids (by the index rows, checked against the record),
 * then those keyed by the new cards and the new Exchange contacts. Returns the new store messages.
 */
async function loadNamed(run: ContactsRun, vc: VoiceChanges, ec: ContactChanges): Promise<StoredSource[]> {
  const state = run.deps.state;
  const found = await state.lookupKeys!({ uids: [...vc.changed.map((m) => m.uid), ...vc.vanished], graphIds: [...ec.upserted.map((c) => c.id), ...ec.removed] });
  const named = new Set([...found.byUid.values(), ...found.byGraphId.values()]);
  addRecords(run, named.size ? await state.loadItemsByKey!([...named]) : []);
  // A record that cannot be read still holds what its index rows named: its item is left alone.
  for (const [uid, k] of found.byUid) if (run.byKey.get(k)?.skipped?.code === "STATE_CORRUPT") run.byUid.set(uid, run.byKey.get(k)!);
  for (const [id, k] of found.byGraphId) if (run.byKey.get(k)?.skipped?.code === "STATE_CORRUPT") run.byGraphId.set(id, run.byKey.get(k)!);
  const fresh = await fetchNew(run, unknownUids(run, vc));
  const more = new Set<string>();
  for (const item of fresh) {
    try { const card = await readCard(item); run.cards.set(card.uid, card); more.add(keyOfCard(card)); } catch { /* addCard records it */ }
  }
  for (const c of ec.upserted) if (!run.byGraphId.has(c.id)) more.add(keyOfGraph(c.id));
  const missing = [...more].filter((k) => !run.byKey.has(k));
  addRecords(run, missing.length ? await state.loadItemsByKey!(missing) : []);
  return fresh;
}

function addRecords(run: ContactsRun, records: ContactRecord[]): void {
  for (const r of records) {
    run.byKey.set(r.syncKey, r);
    if (r.imapUid !== undefined) run.byUid.set(r.imapUid, r);
    if (r.graphId !== undefined) run.byGraphId.set(r.graphId, r);
  }
}

/** Contacts on both sides that neither has linked yet: one item each (src/sync/contactAdoption.ts); ambiguous ones listed. */
async function adopt(run: ContactsRun): Promise<void> {
  const merged = adoptContacts(run);
  run.report.adopted = merged.merged;
  run.report.adoption = { pairs: merged.pairs, ambiguous: merged.ambiguous };
  if (run.deps.dryRun) return;
  for (const a of merged.ambiguous) {
    await run.deps.putConflict({ syncKey: a.storeKey, at: new Date().toISOString(), kind: "contact-match", loser: "none", content: JSON.stringify({ candidates: a.candidates }), summary: `a store card fits ${a.candidates.length} Exchange contact(s), or another card fits the same one: copied, nothing merged` });
  }
}

const countsAsLinked = (r: ContactRecord) => !r.skipped && !r.pendingGraphCreate;

function countRecords(records: Iterable<ContactRecord>): RecordCounts {
  const c: RecordCounts = { linked: 0, skipped: 0 };
  for (const r of records) { if (countsAsLinked(r)) c.linked++; if (r.skipped) c.skipped++; }
  return c;
}

/** The saved counts moved by what happened to the records this run read (the others did not change). */
function countDelta(saved: RecordCounts, before: Map<string, ContactRecord>, after: Map<string, ContactRecord>): RecordCounts {
  const was = countRecords(before.values());
  const is = countRecords(after.values());
  return { linked: Math.max(0, saved.linked + is.linked - was.linked), skipped: Math.max(0, saved.skipped + is.skipped - was.skipped) };
}

function newRun(deps: ContactsSyncDeps): ContactsRun {
  const byKey = new Map<string, ContactRecord>();
  const write = !deps.dryRun;
  return {
    deps, byKey, byUid: new Map(), byGraphId: new Map(), imapNow: new Map(), graphNow: new Map(), cards: new Map(), graphFields: new Map(), duplicates: [], replaced: [],
    report: { actions: emptyCounts(), conflicts: 0, duplicatesRemoved: 0, skipped: 0, skippedTotal: 0, flagged: 0, deltaExpired: false, corrupt: 0, itemsRead: 0 },
    put: async (r) => { byKey.set(r.syncKey, r); if (write) await deps.state.putItem(r); },
    drop: async (key) => { byKey.delete(key); if (write) await deps.state.deleteItem(key); },
  };
}

/** Graph creates a crashed run left pending: found by their key, they are simply linked. */
async function resolvePending(run: ContactsRun): Promise<void> {
  for (const r of [...run.byKey.values()]) {
    if (!r.pendingGraphCreate) continue;
    const found = await run.deps.exchange.findBySyncKey(r.syncKey);
    if (!found) continue;
    await run.put({ ...r, graphId: found.id, graphHash: mappedHash(found.fields), pendingGraphCreate: false });
    run.byGraphId.set(found.id, run.byKey.get(r.syncKey)!);
  }
}

/** Exchange's changes; an expired delta token means a full listing, never a blind re-copy. */
async function exchangeChanges(run: ContactsRun, deltaLink: string | undefined): Promise<ContactChanges> {
  try {
    return await run.deps.exchange.changes(deltaLink);
  } catch (e) {
    if (!isConnectorError(e, "DELTA_TOKEN_EXPIRED")) throw e;
    run.report.deltaExpired = true;
    run.deps.log.warn("graph.contacts.delta.expired", run.deps.ids);
    return run.deps.exchange.changes(undefined);
  }
}

/**
 * The plan's writes as the store's push and Graph's notifications report them: a card written
 * is an APPEND, a card replaced or removed a STORE \Deleted and an EXPUNGE of its UID; an
 * Exchange contact changed is "updated", removed "deleted". A contact created in Exchange is
 * not among them: its id is known only after the create (its "created" starts one run).
 */
function contactEchoes(actions: ContactAction[]): AnnouncedWrites | undefined {
  const out: AnnouncedWrites = { store: [], graph: [] };
  const removed = (uid: number) => out.store.push({ uid, kind: "flags" }, { uid, kind: "expunge" });
  for (const a of actions) {
    if (a.kind === "createInImap") out.store.push({ uid: 0, kind: "append" });
    else if (a.kind === "updateImap") { out.store.push({ uid: 0, kind: "append" }); removed(a.imapUid); }
    else if (a.kind === "deleteInImap") removed(a.imapUid);
    else if (a.kind === "updateGraph") out.graph.push({ id: a.graphId, change: "updated" });
    else if (a.kind === "deleteInGraph") out.graph.push({ id: a.graphId, change: "deleted" });
  }
  return out.store.length || out.graph.length ? out : undefined;
}

/** Photo reads from which one listing of the folder's photo flags pays (a page holds 1,000 contacts). */
const PICTURE_LISTING_MIN = 20;

/**
 * Cards written from Exchange contacts carry the contact's photo. With many to write (a first
 * sync, an adoption), the run lists which contacts have a photo (src/graph/contacts.ts
 * withPictures) and asks only for those: 2,000 adopted contacts cost 2 listing pages and the
 * photos there are, not 2,000 photo GETs. A listing that fails costs nothing but the saving:
 * every photo is asked for, as with few cards.
 */
async function picturesFor(run: ContactsRun, actions: ContactAction[]): Promise<Set<string> | undefined> {
  const reads = actions.filter((a) => a.kind === "createInImap" || a.kind === "updateImap").length;
  if (reads < PICTURE_LISTING_MIN || !run.deps.exchange.withPictures) return undefined;
  try {
    return await run.deps.exchange.withPictures();
  } catch (e) {
    run.deps.log.warn("contacts.pictures.unlisted", { ...run.deps.ids, error: ensureConnectorError(e) });
    return undefined;
  }
}

/** Applies the plan (src/sync/actionQueue.ts); returns how many actions were left because the run's time was up. */
async function applyAll(run: ContactsRun, actions: ContactAction[]): Promise<number> {
  const { left } = await runActionQueue(actions, {
    parallel: run.deps.parallel ?? SMALL_ITEM_ACTIONS_AT_ONCE,
    // Writes to Exchange are one small Graph request each (batched by the client); cards
    // written to the store (a photo read each, a MULTIAPPEND) stay `parallel` at once.
    light: { is: (a) => a.kind !== "createInImap" && a.kind !== "updateImap", parallel: BATCHED_ACTIONS_AT_ONCE },
    timeUp: run.deps.timeUp,
    context: (a) => ({ ...run.deps.ids, syncKey: a.syncKey }),
    apply: async (a) => {
      await applyContactAction(run, a);
      run.report.actions[a.kind]++;
    },
    // An item problem skips that item, its reason on its record.
    itemFailed: async (a, err) => {
      if (!ITEM_ERRORS.has(err.code)) return false;
      const prev = run.byKey.get(a.syncKey);
      await run.put({ ...(prev ?? { syncKey: a.syncKey }), pendingGraphCreate: false, skipped: { code: err.code, message: err.message } });
      run.report.skipped++;
      run.deps.log.warn("contacts.item.skipped", { ...run.deps.ids, syncKey: a.syncKey, code: err.code });
      return true;
    },
  });
  return left;
}

/** A held-back mass delete keeps the cursors where they are, so the deletes are not forgotten. */
function refuseMassDelete(deps: ContactsSyncDeps, plan: ContactPlan): void {
  if (!plan.massDelete) return;
  deps.log.error("contacts.massDelete.refused", { ...deps.ids, ...plan.massDelete });
  throw new ConnectorError("MASS_DELETE_REFUSED",
    `refused to delete ${plan.massDelete.deletes} of ${plan.massDelete.known} contacts on the ${plan.massDelete.side === "graph" ? "Exchange" : "voice store"} side`,
    { ...deps.ids, transient: false });
}
