/**
 * The contacts executor's writing half: one planned action applied to the sides and the state.
 * A Graph create writes its pending record first; an IMAP replacement APPENDs the new card
 * before it expunges the old one, and two cards with one key resolve to the newest, so a
 * crash between them neither loses nor duplicates. Each record is written after its action.
 */
import { ConnectorError, isConnectorError } from "../errors.js";
import { parseVCard, writeVCard, type ContactFields } from "../formats/vcard.js";
import { cardPhoto, photoForExchange, withPhoto } from "../formats/contactPhoto.js";
import { toGraphContact } from "../formats/contactMapping.js";
import { storeItemMessage } from "../formats/storeItem.js";
import { mappedHash, photoHash, readCard, storeHash, type StoreCard } from "./contactCards.js";
import type { ContactAction } from "./contactsPlanner.js";
import type { ContactRecord, GraphContact } from "./ports.js";
import type { ContactsRun } from "./contactsSync.js";

type Refused = Array<{ field: string; message: string }>;

export async function applyContactAction(run: ContactsRun, a: ContactAction): Promise<void> {
  switch (a.kind) {
    case "createInGraph": return createInGraph(run, a);
    case "createInImap": {
      const { c, graphPhoto } = await withExchangePhoto(run, await contactOf(run, a.syncKey, a.graphId));
      const w = await writeCard(run, a.syncKey, c);
      await run.put({ syncKey: a.syncKey, imapUid: w.uid, imapHash: w.hash, imapMapped: w.mapped, graphId: a.graphId, graphHash: mappedHash(c.fields), graphPhoto, graphModified: c.lastModifiedDateTime });
      return;
    }
    case "updateGraph": return updateGraph(run, a);
    case "updateImap": return updateImap(run, a);
    case "deleteInGraph":
      try { await run.deps.exchange.remove(a.graphId); } catch (e) { if (!isConnectorError(e, "GRAPH_NOT_FOUND")) throw e; }
      await run.drop(a.syncKey);
      return;
    case "deleteInImap":
      await run.deps.store.remove(a.imapUid);
      await run.drop(a.syncKey);
      return;
    case "record": {
      const i = run.imapNow.get(a.syncKey)!;
      const g = run.graphNow.get(a.syncKey)!;
      await run.put({ ...run.byKey.get(a.syncKey), syncKey: a.syncKey, imapUid: a.imapUid, imapHash: i.hash, imapMapped: i.mapped, graphId: a.graphId, graphHash: g.hash.replace(/\|photo:.*$/, ""), pendingGraphCreate: undefined, skipped: undefined });
      return;
    }
    case "forget":
      await run.drop(a.syncKey);
      return;
  }
}

async function createInGraph(run: ContactsRun, a: Extract<ContactAction, { kind: "createInGraph" }>): Promise<void> {
  const card = await cardOf(run, a.imapUid);
  const mine = { syncKey: a.syncKey, imapUid: a.imapUid, imapHash: card.hash, imapMapped: card.mapped };
  if (a.resume) {
    const found = await run.deps.exchange.findBySyncKey(a.syncKey);
    if (found) { await run.put({ ...mine, graphId: found.id, graphHash: mappedHash(found.fields) }); return; }
  }
  await run.put({ ...mine, pendingGraphCreate: true });
  const created = await run.deps.exchange.create(a.syncKey, card.fields);
  const pushed = await pushPhoto(run, created.id, card.fields);
  await run.put({ ...mine, graphId: created.id, graphHash: mappedHash(created.fields), graphPhoto: pushed.graphPhoto, graphModified: pushed.graphPhoto === undefined ? created.lastModifiedDateTime : undefined, ...flagsOf(run, a.syncKey, card.fields, pushed.refused) });
}

async function updateGraph(run: ContactsRun, a: Extract<ContactAction, { kind: "updateGraph" }>): Promise<void> {
  const card = await cardOf(run, a.imapUid);
  if (a.conflictLoser) await conflict(run, a.syncKey, "graph", (await contactOf(run, a.syncKey, a.graphId, a.adopted)).fields);
  const updated = await run.deps.exchange.update(a.graphId, card.fields);
  const pushed = await pushPhoto(run, a.graphId, card.fields);
  await run.put({ syncKey: a.syncKey, imapUid: a.imapUid, imapHash: card.hash, imapMapped: card.mapped, graphId: a.graphId, graphHash: mappedHash(updated.fields), graphPhoto: pushed.graphPhoto ?? run.byKey.get(a.syncKey)?.graphPhoto, graphModified: pushed.graphPhoto === undefined ? updated.lastModifiedDateTime : undefined, ...flagsOf(run, a.syncKey, card.fields, pushed.refused) });
}

async function updateImap(run: ContactsRun, a: Extract<ContactAction, { kind: "updateImap" }>): Promise<void> {
  const { c, graphPhoto } = await withExchangePhoto(run, await contactOf(run, a.syncKey, a.graphId, a.adopted));
  if (a.conflictLoser) await conflict(run, a.syncKey, "imap", (await cardOf(run, a.imapUid)).fields);
  // New card first, then the old one goes, then the record: a crash after the APPEND
  // leaves two cards with one key (the newest wins next run); after the EXPUNGE, the
  // record's UID has vanished and the new card is re-matched by its key. The EXPUNGE and the
  // record go in groups beside the other actions (cardReplaced, finishReplaced below).
  const w = await writeCard(run, a.syncKey, c);
  cardReplaced(run, a.imapUid, { syncKey: a.syncKey, imapUid: w.uid, imapHash: w.hash, imapMapped: w.mapped, graphId: a.graphId, graphHash: mappedHash(c.fields), graphPhoto, graphModified: c.lastModifiedDateTime });
}

async function cardOf(run: ContactsRun, uid: number): Promise<StoreCard> {
  const known = run.cards.get(uid);
  if (known) return known;
  const [item] = await run.deps.store.fetchSources([uid]);
  if (!item) throw new ConnectorError("IMAP_COMMAND_FAILED", `contact UID ${uid} is not on the store any more`, { imapUid: uid, transient: true });
  const card = await readCard(item);
  run.cards.set(uid, card);
  return card;
}

/**
 * Contacts that began on the store carry store-only properties in Exchange (not in delta):
 * read them back. One that began in Exchange ("g:" key), or that this run adopted (no record:
 * umconnect never wrote on it), is whole in the delta's fields: no read per contact, so
 * adopting 2,000 contacts costs about one request each, not two (issue 17's 1.1 target).
 */
async function contactOf(run: ContactsRun, key: string, id: string, adopted?: boolean): Promise<GraphContact> {
  const c = run.graphFields.get(id);
  return c && (adopted || key.startsWith("g:")) ? c : run.deps.exchange.get(id);
}

async function writeCard(run: ContactsRun, key: string, c: GraphContact): Promise<{ uid: number; hash: string; mapped: string }> {
  const fields: ContactFields = { ...c.fields, uid: key };
  const text = writeVCard(fields);
  const uid = await run.deps.store.append(storeItemMessage({ kind: "vcard", key, subject: fields.displayName ?? fields.emailAddresses[0]?.address ?? "Contact", body: text }));
  const written = parseVCard(text);
  return { uid, hash: storeHash(written), mapped: mappedHash(written) };
}

async function conflict(run: ContactsRun, key: string, loser: "imap" | "graph", fields: ContactFields): Promise<void> {
  await run.deps.putConflict({ syncKey: key, at: new Date().toISOString(), kind: "contact", loser, content: writeVCard({ ...fields, uid: key }), summary: fields.displayName });
  run.report.conflicts++;
  run.deps.log.info("contacts.conflict", { ...run.deps.ids, syncKey: key, loser });
}

/** A value Exchange would refuse was left out of the write (contactValidation.ts): flagged, never skipped. */
function flagsOf(run: ContactsRun, key: string, fields: ContactFields, more: Refused = []): Pick<ContactRecord, "flags"> {
  const refused = [...toGraphContact(fields).refused, ...more];
  if (!refused.length) return {};
  run.report.flagged++;
  run.deps.log.warn("contacts.item.flagged", { ...run.deps.ids, syncKey: key, code: "CONTACT_VALUE_REFUSED", fields: refused.map((r) => r.field).join(",") });
  return { flags: refused };
}

/** The card's photo to the Exchange contact photo (contactPhoto.ts): what Exchange cannot take stays on the store, flagged. */
async function pushPhoto(run: ContactsRun, graphId: string, fields: ContactFields): Promise<{ refused: Refused; graphPhoto?: string }> {
  const photo = cardPhoto(fields);
  if (!photo) return { refused: [] };
  const ok = photoForExchange(photo);
  if ("message" in ok) return { refused: [ok] };
  await run.deps.exchange.putPhoto(graphId, ok);
  return { refused: [], graphPhoto: photoHash(ok) };
}

/** Exchange's photo into the card written to the store (not asked for when the run's listing says it has none). */
async function withExchangePhoto(run: ContactsRun, c: GraphContact): Promise<{ c: GraphContact; graphPhoto: string }> {
  const photo = run.pictures && !run.pictures.has(c.id) ? undefined : await run.deps.exchange.getPhoto(c.id);
  return { c: { ...c, fields: withPhoto(c.fields, photo) }, graphPhoto: photoHash(photo) };
}

/**
 * The old cards of the replaced ones go in UID EXPUNGEs of 50 (src/imap/groupedWrites.ts),
 * then their records name the new cards: full groups beside the actions (cardReplaced), the
 * rest once they are done (here). Not one per action: one store connection carries every
 * write of the run, and a removal per action (a STORE and an EXPUNGE in groups of about 8
 * between the APPENDs) kept it busy for most of a 2,000-contact adoption (bench/adopt.bench.ts:
 * 2,000 replacements, 234 removal groups and 466 APPEND groups on the connection).
 * Crash safety is the action's own order kept for the whole set: until its record is written,
 * a replaced card's record still names the old card, so a run that died in between finds two
 * cards with one key (the new one not in any record) and keeps the newest, as after a death
 * between one action's APPEND and its EXPUNGE.
 */
export async function finishReplaced(run: ContactsRun): Promise<void> {
  await run.flushing;
  await removeReplaced(run, run.replaced.splice(0));
}

/** One group of replaced cards: the old cards removed (one grouped UID EXPUNGE), then the records that name the new ones. */
async function removeReplaced(run: ContactsRun, group: ContactsRun["replaced"]): Promise<void> {
  await Promise.all(group.map((r) => run.deps.store.remove(r.uid)));
  await Promise.all(group.map((r) => run.put(r.record)));
}

/** Replaced cards per removal while the actions go on: a full UID EXPUNGE group (src/imap/groupedWrites.ts). */
const REPLACED_PER_FLUSH = 50;

/**
 * A card was replaced: once a full group of old cards waits, it is removed (and its records
 * written) beside the actions, one group at a time; the rest goes in finishReplaced. A failing
 * group fails the run there (the death case above covers what it leaves).
 */
export function cardReplaced(run: ContactsRun, uid: number, record: ContactRecord): void {
  run.replaced.push({ uid, record });
  if (run.replaced.length < REPLACED_PER_FLUSH || run.flushing) return;
  const flush = async () => {
    while (run.replaced.length >= REPLACED_PER_FLUSH) await removeReplaced(run, run.replaced.splice(0, REPLACED_PER_FLUSH));
  };
  // A failed group stays as `flushing` (handled here, so it is never unhandled): no further
  // group starts, and finishReplaced (or the run's failure path) gets its error.
  run.flushing = flush().then(() => { run.flushing = undefined; });
  run.flushing.catch(() => undefined);
}
