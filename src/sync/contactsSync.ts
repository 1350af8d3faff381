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
import { mappedHash, type StoreCard } from "./contactCards.js";
import { applyContactAction } from "./contactsApply.js";
import { adoptContacts, contactViews, ITEM_ERRORS, readExchangeSide, readStoreSide } from "./contactsView.js";
import { planContacts, type ContactAction, type ContactPlan, type ContactSideView } from "./contactsPlanner.js";
import type { ConflictRecord, ContactChanges, ContactCursors, ContactExchangePort, ContactRecord, ContactStorePort, GraphContact, RecordStatePort } from "./ports.js";

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
  report: ContactsSyncReport;
  put(r: ContactRecord): Promise<void>;
  drop(key: string): Promise<void>;
}

const emptyCounts = (): ContactsSyncReport["actions"] => ({ createInGraph: 0, createInImap: 0, updateGraph: 0, updateImap: 0, deleteInGraph: 0, deleteInImap: 0, record: 0, forget: 0 });

export async function syncContacts(deps: ContactsSyncDeps): Promise<ContactsSyncReport> {
  const records = await deps.state.loadItems();
  const cursors: ContactCursors = deps.mode === "full" ? {} : (await deps.state.loadCursors()) ?? {};
  const run = newRun(deps, records);
  await resolvePending(run);
  indexRecords(run);

  // 1. Both sides.
  const vc = await deps.store.changes(cursors.imap);
  await readStoreSide(run, vc);
  const ec = await exchangeChanges(run, cursors.deltaLink);
  await readExchangeSide(run, ec);
  // Contacts on both sides that neither has linked yet (first sync after another product):
  // one item each, never a duplicate (src/sync/contactAdoption.ts).
  const merged = adoptContacts(run);
  for (const a of merged.ambiguous) {
    await deps.putConflict({ syncKey: a.storeKey, at: new Date().toISOString(), kind: "contact-match", loser: "none", content: JSON.stringify({ candidates: a.candidates }), summary: `a store card fits ${a.candidates.length} Exchange contact(s), or another card fits the same one: copied, nothing merged` });
  }
  run.report.adopted = merged.merged;

  // 2. Plan.
  const plan = planContacts(contactViews(run), deps.limits);
  run.report.massDelete = plan.massDelete;

  // 3. Apply.
  await applyAll(run, plan.actions);
  for (const uid of new Set(run.duplicates)) { await deps.store.remove(uid); run.report.duplicatesRemoved++; }

  // 4. Cursors last.
  refuseMassDelete(deps, plan);
  await deps.state.saveCursors({ imap: vc.cursor, deltaLink: ec.deltaLink });
  run.report.skippedTotal = [...run.byKey.values()].filter((r) => r.skipped).length;
  return run.report;
}

function newRun(deps: ContactsSyncDeps, records: ContactRecord[]): ContactsRun {
  const byKey = new Map(records.map((r) => [r.syncKey, r]));
  return {
    deps, byKey, byUid: new Map(), byGraphId: new Map(), imapNow: new Map(), graphNow: new Map(), cards: new Map(), graphFields: new Map(), duplicates: [],
    report: { actions: emptyCounts(), conflicts: 0, duplicatesRemoved: 0, skipped: 0, skippedTotal: 0, flagged: 0, deltaExpired: false },
    put: async (r) => { byKey.set(r.syncKey, r); await deps.state.putItem(r); },
    drop: async (key) => { byKey.delete(key); await deps.state.deleteItem(key); },
  };
}

/** Graph creates a crashed run left pending: found by their key, they are simply linked. */
async function resolvePending(run: ContactsRun): Promise<void> {
  for (const r of [...run.byKey.values()]) {
    if (!r.pendingGraphCreate) continue;
    const found = await run.deps.exchange.findBySyncKey(r.syncKey);
    if (found) await run.put({ ...r, graphId: found.id, graphHash: mappedHash(found.fields), pendingGraphCreate: false });
  }
}

function indexRecords(run: ContactsRun): void {
  for (const r of run.byKey.values()) {
    if (r.imapUid !== undefined) run.byUid.set(r.imapUid, r);
    if (r.graphId !== undefined) run.byGraphId.set(r.graphId, r);
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
 * Applies the plan, `parallel` actions at once. An item problem skips that item (its reason on
 * its record); the first other failure stops the run once the actions in flight settled.
 */
async function applyAll(run: ContactsRun, actions: ContactAction[]): Promise<void> {
  const queue = [...actions];
  let fatal: ConnectorError | undefined;
  const worker = async () => {
    for (let a = queue.shift(); a && !fatal; a = queue.shift()) {
      try {
        await applyContactAction(run, a);
        run.report.actions[a.kind]++;
      } catch (e) {
        const err = ensureConnectorError(e, "INTERNAL", { ...run.deps.ids, syncKey: a.syncKey });
        if (err.transient || !ITEM_ERRORS.has(err.code)) { fatal ??= err; return; }
        const prev = run.byKey.get(a.syncKey);
        await run.put({ ...(prev ?? { syncKey: a.syncKey }), pendingGraphCreate: false, skipped: { code: err.code, message: err.message } });
        run.report.skipped++;
        run.deps.log.warn("contacts.item.skipped", { ...run.deps.ids, syncKey: a.syncKey, code: err.code });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(run.deps.parallel ?? 8, queue.length) }, worker));
  if (fatal) throw fatal;
}

/** A held-back mass delete keeps the cursors where they are, so the deletes are not forgotten. */
function refuseMassDelete(deps: ContactsSyncDeps, plan: ContactPlan): void {
  if (!plan.massDelete) return;
  deps.log.error("contacts.massDelete.refused", { ...deps.ids, ...plan.massDelete });
  throw new ConnectorError("MASS_DELETE_REFUSED",
    `refused to delete ${plan.massDelete.deletes} of ${plan.massDelete.known} contacts on the ${plan.massDelete.side === "graph" ? "Exchange" : "voice store"} side`,
    { ...deps.ids, transient: false });
}
