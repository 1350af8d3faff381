/**
 * The contacts executor's reading half: both sides' changes since the cursors, turned into one
 * small view per item for the pure planner (src/sync/contactsPlanner.ts). The store's messages
 * are immutable: a known UID has the content recorded for it, so only new UIDs are fetched and
 * parsed. Contacts on both sides that neither has linked yet are made one (adoption).
 */
import { ensureConnectorError } from "../errors.js";
import { matchContacts } from "./contactAdoption.js";
import { keyOfCard, keyOfGraph, mappedHash, photoHash, readCard, splitMultiCard, type StoreCard } from "./contactCards.js";
import type { ContactView, ContactSideView } from "./contactsPlanner.js";
import type { ContactChanges, ContactExchangePort, ContactRecord, GraphContact, StoredSource, VoiceChanges } from "./ports.js";
import type { ContactsRun } from "./contactsSync.js";
import { eventLoopTurns } from "../eventLoop.js";

/** Content problems that skip one item (kept visible in state) instead of failing the run. */
export const ITEM_ERRORS = new Set(["VCARD_MALFORMED", "GRAPH_REQUEST_FAILED", "PAYLOAD_TOO_LARGE"]);

const recordedSide = (r: ContactRecord, uid: number): ContactSideView => ({ ref: String(uid), hash: r.imapHash!, mapped: r.imapMapped ?? "", modified: "" });

/** UIDs the changes name that no record read holds: new messages, to fetch and parse. */
export function unknownUids(run: ContactsRun, vc: VoiceChanges): number[] {
  const rebuild = vc.full || vc.uidValidityChanged;
  return vc.changed.filter((m) => rebuild ? !(run.byUid.get(m.uid) && !vc.uidValidityChanged) : !run.byUid.has(m.uid)).map((m) => m.uid);
}

/** The new store messages, fetched (one FETCH) and split into one card per message. */
export async function fetchNew(run: ContactsRun, uids: number[]): Promise<StoredSource[]> {
  const { store, log, ids } = run.deps;
  const items = await store.fetchSources(uids);
  return run.deps.dryRun ? items : splitMultiCard(store, items, log, ids);
}

/** The store side: recorded cards that are still there, plus the new ones (`fresh`) read and keyed. */
export async function readStoreSide(run: ContactsRun, vc: VoiceChanges, fresh: StoredSource[]): Promise<void> {
  const { byKey, byUid, imapNow } = run;
  const rebuild = vc.full || vc.uidValidityChanged;
  if (!rebuild) {
    for (const r of byKey.values()) if (r.imapUid !== undefined && !r.skipped && r.imapHash) imapNow.set(r.syncKey, recordedSide(r, r.imapUid));
    for (const uid of vc.vanished) { const r = byUid.get(uid); if (r && imapNow.get(r.syncKey)?.ref === String(uid)) imapNow.delete(r.syncKey); }
  }
  const present = new Set(rebuild ? vc.changed.map((m) => m.uid) : []);
  if (rebuild && !vc.uidValidityChanged) {
    // A full listing: known UIDs keep their recorded content; absent ones are gone.
    for (const uid of present) { const r = byUid.get(uid); if (r && !r.skipped && r.imapHash) imapNow.set(r.syncKey, recordedSide(r, uid)); }
  }
  const turn = eventLoopTurns();
  for (const item of fresh) {
    await turn();
    if (rebuild) present.add(item.uid); // a card split out of a message now has a UID of its own
    await addCard(run, item, vc.cursor.uidValidity);
  }
  // Skipped cards whose message left the store are forgotten (an unreadable record stays for the admin).
  for (const r of [...byKey.values()]) if (r.skipped && r.skipped.code !== "STATE_CORRUPT" && r.imapUid !== undefined && (vc.vanished.includes(r.imapUid) || (rebuild && !present.has(r.imapUid)))) await run.drop(r.syncKey);
}

/** One new store message: parsed and keyed, or skipped with its reason. */
async function addCard(run: ContactsRun, item: StoredSource, uidValidity: number): Promise<void> {
  try {
    const card = run.cards.get(item.uid) ?? await readCard(item);
    run.cards.set(card.uid, card);
    const key = keyOfCard(card);
    const prev = run.imapNow.get(key);
    // Two cards with one key (a replacement interrupted between APPEND and EXPUNGE, or the
    // store's own edit in progress): the newest wins, the older copy goes.
    if (prev && Number(prev.ref) !== card.uid) {
      const older = Math.min(Number(prev.ref), card.uid);
      run.duplicates.push(older);
      if (older === card.uid) return;
    }
    run.imapNow.set(key, { ref: String(card.uid), hash: card.hash, mapped: card.mapped, modified: card.modified });
  } catch (e) {
    const err = ensureConnectorError(e);
    if (!ITEM_ERRORS.has(err.code)) throw err;
    const key = `bad:${uidValidity}:${item.uid}`;
    if (!run.byKey.get(key)) { await run.put({ syncKey: key, imapUid: item.uid, skipped: { code: err.code, message: err.message } }); run.report.skipped++; }
    run.deps.log.warn("contacts.item.skipped", { ...run.deps.ids, imapUid: item.uid, code: err.code });
  }
}

/** The Exchange side: recorded contacts that are still there, plus the changed ones hashed. */
export async function readExchangeSide(run: ContactsRun, ec: ContactChanges): Promise<void> {
  const { byKey, byGraphId, graphNow } = run;
  if (!ec.full) for (const r of byKey.values()) if (r.graphId !== undefined && r.graphHash) graphNow.set(r.syncKey, { ref: r.graphId, hash: r.graphHash, mapped: r.graphHash, modified: "" });
  for (const id of ec.removed) { const r = byGraphId.get(id); if (r && graphNow.get(r.syncKey)?.ref === id) graphNow.delete(r.syncKey); }
  for (const c of ec.upserted) {
    run.graphFields.set(c.id, c);
    const r = byGraphId.get(c.id);
    const key = r?.syncKey ?? keyOfGraph(c.id);
    const h = mappedHash(c.fields);
    // A new photo makes the contact differ from the store's card too (mapped), so it is copied.
    const ph = await photoChange(run.deps.exchange, c, r, h);
    graphNow.set(key, { ref: c.id, hash: h + ph, mapped: h + ph, modified: c.lastModifiedDateTime ?? "" });
  }
}

/**
 * A change Exchange reported that the mapped fields do not explain (a new photo in Outlook, a
 * Graph-only field, our own write coming back): the photo is looked at, and a photo other
 * than the one recorded marks the contact changed (its view hash gets a suffix).
 */
async function photoChange(exchange: ContactExchangePort, c: GraphContact, r: ContactRecord | undefined, mapped: string): Promise<string> {
  if (!r || r.skipped || r.graphHash !== mapped) return "";
  // Our own write coming back (same lastModified as our write left): no GET, no news.
  if (r.graphModified !== undefined && c.lastModifiedDateTime === r.graphModified) return "";
  const ph = photoHash(await exchange.getPhoto(c.id));
  return ph === (r.graphPhoto ?? "") ? "" : `|photo:${ph}`;
}

/**
 * Unlinked store cards and unlinked Exchange contacts of one person become one view: the
 * Exchange side moves to the card's key. Ambiguous ones are left apart (each is copied).
 */
export function adoptContacts(run: Pick<ContactsRun, "byKey" | "imapNow" | "graphNow" | "cards" | "graphFields">) {
  const { byKey, imapNow, graphNow, cards, graphFields } = run;
  const lone = (now: Map<string, ContactSideView>, other: Map<string, ContactSideView>) => [...now.entries()].filter(([k]) => !byKey.has(k) && !other.has(k));
  const store = lone(imapNow, graphNow).flatMap(([key, v]) => { const c = cards.get(Number(v.ref)); return c ? [{ key, fields: c.fields }] : []; });
  const exchange = lone(graphNow, imapNow).flatMap(([key, v]) => { const c = graphFields.get(v.ref); return c ? [{ key, fields: c.fields }] : []; });
  if (!store.length || !exchange.length) return { merged: 0, pairs: [] as Array<{ storeKey: string; graphKey: string }>, ambiguous: [] as Array<{ storeKey: string; candidates: string[] }> };
  const { pairs, ambiguous } = matchContacts(store, exchange);
  for (const p of pairs) { graphNow.set(p.storeKey, graphNow.get(p.graphKey)!); graphNow.delete(p.graphKey); }
  return { merged: pairs.length, pairs, ambiguous };
}

/**
 * Items whose record could not be read (STATE_CORRUPT) are left alone on both sides: nothing
 * is copied, changed or deleted for them, and each is logged. Returns how many.
 */
export function setAsideCorrupt(run: ContactsRun): number {
  let n = 0;
  for (const r of run.byKey.values()) {
    if (r.skipped?.code !== "STATE_CORRUPT") continue;
    run.imapNow.delete(r.syncKey);
    run.graphNow.delete(r.syncKey);
    run.deps.log.warn("contacts.state.corrupt", { ...run.deps.ids, syncKey: r.syncKey, code: "STATE_CORRUPT" });
    n++;
  }
  return n;
}

/** One view per item the sides or the records name; skipped records stay out of the plan. */
export function contactViews(run: Pick<ContactsRun, "byKey" | "imapNow" | "graphNow">): ContactView[] {
  const { byKey, imapNow, graphNow } = run;
  const keys = new Set<string>([...imapNow.keys(), ...graphNow.keys()]);
  for (const r of byKey.values()) if (!r.skipped) keys.add(r.syncKey);
  return [...keys].map((syncKey) => {
    const r = byKey.get(syncKey);
    return {
      syncKey,
      link: r && !r.skipped ? { imapUid: r.imapUid, graphId: r.graphId, imapHash: r.imapHash, graphHash: r.graphHash, pendingGraphCreate: r.pendingGraphCreate } : undefined,
      imap: imapNow.get(syncKey),
      graph: graphNow.get(syncKey),
    };
  });
}

export type { StoreCard };
