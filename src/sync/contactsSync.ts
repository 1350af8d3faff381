/**
 * The contacts sync executor: one run for one linked mailbox, two-way between the voice
 * store's contacts folder (one vCard per message) and an Exchange contact folder.
 *
 * Same discipline as the voicemail executor (DESIGN.md section 3):
 *  1. read both sides' changes since the saved cursors;
 *  2. resolve Graph creates a crashed run left pending (look the sync key up), then plan (pure);
 *  3. apply actions; a Graph create writes its pending row first; an IMAP replacement APPENDs
 *     the new card before it expunges the old one, and two cards with one key resolve to the
 *     newest, so a crash between them neither loses nor duplicates;
 *  4. save the cursors last.
 * The store's messages are immutable: a known UID has the content recorded for it, so only
 * new UIDs are fetched and parsed.
 */
import crypto from "node:crypto";
import { matchContacts } from "./contactAdoption.js";
import { ConnectorError, ensureConnectorError, isConnectorError } from "../errors.js";
import type { Logger } from "../log.js";
import { parseVCard, writeVCard, type ContactFields } from "../formats/vcard.js";
import { normaliseNewlines, splitCards } from "../formats/vcardLines.js";
import { cardPhoto, photoForExchange, withPhoto, type Photo } from "../formats/contactPhoto.js";
import { storeItemMessage, storeItemText } from "../formats/storeItem.js";
import { fromGraphContact, toGraphContact, type ContactChanges, type GraphContact } from "../graph/contacts.js";
import type { ConflictRecord, RecordStatePort } from "../state/stateStore.js";
import type { StoredItem } from "../imap/voiceMailbox.js";
import type { ImapCursor, VoiceChanges } from "./ports.js";
import { planContacts, type ContactAction, type ContactSideView, type ContactView } from "./contactsPlanner.js";

export interface ContactStorePort {
  changes(since: ImapCursor | undefined): Promise<VoiceChanges>;
  fetchSources(uids: number[]): Promise<StoredItem[]>;
  append(source: Buffer): Promise<number>;
  remove(uid: number): Promise<void>;
}

export interface ContactExchangePort {
  changes(deltaLink: string | undefined): Promise<ContactChanges>;
  get(id: string): Promise<GraphContact>;
  create(syncKey: string, fields: ContactFields): Promise<GraphContact>;
  update(id: string, fields: ContactFields): Promise<GraphContact>;
  remove(id: string): Promise<void>;
  findBySyncKey(syncKey: string): Promise<GraphContact | undefined>;
  /** The Exchange contact photo (undefined: none) and setting it. */
  getPhoto(id: string): Promise<Photo | undefined>;
  putPhoto(id: string, photo: Photo): Promise<void>;
}

export interface ContactRecord {
  syncKey: string;
  imapUid?: number;
  graphId?: string;
  /** Hash of the store's card (all of it) when both sides last agreed. */
  imapHash?: string;
  /** Hash of the fields both sides hold, as the store had them. */
  imapMapped?: string;
  /** Hash of the Exchange contact's mapped fields when both sides last agreed. */
  graphHash?: string;
  pendingGraphCreate?: boolean;
  skipped?: { code: string; message: string };
  /** Hash of the Exchange contact photo when both sides last agreed ("" for none). */
  graphPhoto?: string;
  /** Exchange's lastModifiedDateTime as our last write or read left it: its echo in delta is no news. */
  graphModified?: string;
  /** Values Exchange could not take (CONTACT_VALUE_REFUSED): left out there, kept on the store. */
  flags?: Array<{ field: string; message: string }>;
}

export interface ContactCursors { imap?: ImapCursor; deltaLink?: string }

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

const sha = (v: unknown) => crypto.createHash("sha256").update(JSON.stringify(v)).digest("base64url").slice(0, 22);

/** The fields both sides hold, in one canonical form (a round trip through the Graph mapping). */
export function mappedHash(f: ContactFields): string {
  const { extra: _drop, shadows: _own, ...mapped } = fromGraphContact(toGraphContact(f).props);
  return sha(mapped);
}

/** The whole card: mapped fields plus what only the store holds. */
export function storeHash(f: ContactFields): string {
  const g = toGraphContact(f);
  return sha({ mapped: mappedHash(f), extra: g.extra, shadows: g.shadows });
}

interface StoreCard { uid: number; fields: ContactFields; text: string; hash: string; mapped: string; modified: string }

async function readCard(item: StoredItem): Promise<StoreCard> {
  const text = await storeItemText(item.source, "vcard");
  let fields: ContactFields;
  try {
    fields = parseVCard(text);
  } catch (e) {
    throw new ConnectorError("VCARD_MALFORMED", `contact UID ${item.uid}: ${ensureConnectorError(e).message}`, { imapUid: item.uid, cause: e });
  }
  // REV (RFC 6350 section 6.7.4) when the store writes one, else the message's arrival.
  const rev = fields.extra.find((l) => /^REV[:;]/i.test(l))?.replace(/^[^:]*:/, "").trim();
  const revDate = rev ? Date.parse(rev.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, "$1-$2-$3T$4:$5:$6Z")) : NaN;
  const modified = new Date(Number.isNaN(revDate) ? (item.internalDate?.getTime() ?? 0) : revDate).toISOString();
  return { uid: item.uid, fields, text, hash: storeHash(fields), mapped: mappedHash(fields), modified };
}

/**
 * A stored message with several cards (an address book sent as one item): each card becomes a
 * message of its own (APPENDed first, the original EXPUNGEd after), so each is its own contact
 * and a broken one is skipped alone with its reason. A crash in between leaves the original
 * and some copies; the next run splits it again and the copies, having one key each, are
 * settled by the newest-wins rule for two cards with one key.
 */
async function splitMultiCard(store: ContactStorePort, items: StoredItem[], log: Logger, ids: ContactsSyncDeps["ids"]): Promise<StoredItem[]> {
  const out: StoredItem[] = [];
  for (const item of items) {
    let cards: string[];
    try { cards = splitCards(await storeItemText(item.source, "vcard")); } catch { out.push(item); continue; } // readCard reports it
    if (cards.length < 2) { out.push(item); continue; }
    for (const text of cards) {
      const body = `${normaliseNewlines(text).replace(/\n/g, "\r\n")}\r\n`;
      const fn = text.match(/^FN[^:\n]*:(.*)$/im)?.[1]?.trim() || "Contact";
      const source = storeItemMessage({ kind: "vcard", key: `split:${sha(text)}`, subject: fn, body, date: item.internalDate });
      out.push({ uid: await store.append(source), source, internalDate: item.internalDate });
    }
    await store.remove(item.uid);
    log.info("contacts.item.split", { ...ids, imapUid: item.uid, cards: cards.length });
  }
  return out;
}

const photoHash = (p: Photo | undefined) => (p ? sha(p.bytes.toString("base64")) : "");

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

/** Sync key of a store card: its vCard UID, else one derived from its content (stable). */
const keyOfCard = (c: StoreCard) => c.fields.uid ?? `vcard:${sha(c.text)}`;
/** Contacts that began in Exchange are keyed by their (immutable) Graph id. */
const keyOfGraph = (id: string) => `g:${id}`;

/**
 * Unlinked store cards and unlinked Exchange contacts of one person become one view: the
 * Exchange side moves to the card's key. Ambiguous ones are left apart (each is copied).
 */
function adoptContacts(byKey: Map<string, ContactRecord>, imapNow: Map<string, ContactSideView>, graphNow: Map<string, ContactSideView>, cards: Map<number, StoreCard>, graphFields: Map<string, GraphContact>) {
  const lone = (now: Map<string, ContactSideView>, other: Map<string, ContactSideView>) => [...now.entries()].filter(([k]) => !byKey.has(k) && !other.has(k));
  const store = lone(imapNow, graphNow).flatMap(([key, v]) => { const c = cards.get(Number(v.ref)); return c ? [{ key, fields: c.fields }] : []; });
  const exchange = lone(graphNow, imapNow).flatMap(([key, v]) => { const c = graphFields.get(v.ref); return c ? [{ key, fields: c.fields }] : []; });
  if (!store.length || !exchange.length) return { merged: 0, ambiguous: [] as Array<{ storeKey: string; candidates: string[] }> };
  const { pairs, ambiguous } = matchContacts(store, exchange);
  for (const p of pairs) { graphNow.set(p.storeKey, graphNow.get(p.graphKey)!); graphNow.delete(p.graphKey); }
  return { merged: pairs.length, ambiguous };
}

const emptyCounts = (): ContactsSyncReport["actions"] => ({ createInGraph: 0, createInImap: 0, updateGraph: 0, updateImap: 0, deleteInGraph: 0, deleteInImap: 0, record: 0, forget: 0 });
const ITEM_ERRORS = new Set(["VCARD_MALFORMED", "GRAPH_REQUEST_FAILED", "PAYLOAD_TOO_LARGE"]);

export async function syncContacts(deps: ContactsSyncDeps): Promise<ContactsSyncReport> {
  const { store, exchange, state, log } = deps;
  const records = await state.loadItems();
  const cursors: ContactCursors = deps.mode === "full" ? {} : (await state.loadCursors()) ?? {};
  const byKey = new Map(records.map((r) => [r.syncKey, r]));
  const put = async (r: ContactRecord) => { byKey.set(r.syncKey, r); await state.putItem(r); };
  const drop = async (key: string) => { byKey.delete(key); await state.deleteItem(key); };

  // Graph creates a crashed run left pending: found by their key, they are simply linked.
  for (const r of records) {
    if (!r.pendingGraphCreate) continue;
    const found = await exchange.findBySyncKey(r.syncKey);
    if (found) await put({ ...r, graphId: found.id, graphHash: mappedHash(found.fields), pendingGraphCreate: false });
  }
  const byUid = new Map<number, ContactRecord>();
  const byGraphId = new Map<string, ContactRecord>();
  for (const r of byKey.values()) {
    if (r.imapUid !== undefined) byUid.set(r.imapUid, r);
    if (r.graphId !== undefined) byGraphId.set(r.graphId, r);
  }

  // 1a. The store.
  const vc = await store.changes(cursors.imap);
  const rebuild = vc.full || vc.uidValidityChanged;
  const imapNow = new Map<string, ContactSideView>();
  const cards = new Map<number, StoreCard>();
  const duplicates: number[] = [];
  if (!rebuild) {
    for (const r of byKey.values()) if (r.imapUid !== undefined && !r.skipped && r.imapHash) imapNow.set(r.syncKey, { ref: String(r.imapUid), hash: r.imapHash, mapped: r.imapMapped ?? "", modified: "" });
    for (const uid of vc.vanished) { const r = byUid.get(uid); if (r && imapNow.get(r.syncKey)?.ref === String(uid)) imapNow.delete(r.syncKey); }
  }
  const present = new Set(rebuild ? vc.changed.map((m) => m.uid) : []);
  const unknown = vc.changed.filter((m) => rebuild ? !(byUid.get(m.uid) && !vc.uidValidityChanged) : !byUid.has(m.uid)).map((m) => m.uid);
  if (rebuild && !vc.uidValidityChanged) {
    // A full listing: known UIDs keep their recorded content; absent ones are gone.
    for (const uid of present) { const r = byUid.get(uid); if (r && !r.skipped && r.imapHash) imapNow.set(r.syncKey, { ref: String(uid), hash: r.imapHash, mapped: r.imapMapped ?? "", modified: "" }); }
  }
  let skipped = 0;
  for (const item of await splitMultiCard(store, await store.fetchSources(unknown), log, deps.ids)) {
    if (rebuild) present.add(item.uid); // a card split out of a message now has a UID of its own
    try {
      const card = await readCard(item);
      cards.set(card.uid, card);
      const key = keyOfCard(card);
      const prev = imapNow.get(key);
      // Two cards with one key (a replacement interrupted between APPEND and EXPUNGE, or the
      // store's own edit in progress): the newest wins, the older copy goes.
      if (prev && Number(prev.ref) !== card.uid) {
        const older = Math.min(Number(prev.ref), card.uid);
        duplicates.push(older);
        if (older === card.uid) continue;
      }
      imapNow.set(key, { ref: String(card.uid), hash: card.hash, mapped: card.mapped, modified: card.modified });
    } catch (e) {
      const err = ensureConnectorError(e);
      if (!ITEM_ERRORS.has(err.code)) throw err;
      const key = `bad:${vc.cursor.uidValidity}:${item.uid}`;
      if (!byKey.get(key)) { await put({ syncKey: key, imapUid: item.uid, skipped: { code: err.code, message: err.message } }); skipped++; }
      log.warn("contacts.item.skipped", { ...deps.ids, imapUid: item.uid, code: err.code });
    }
  }
  // Skipped cards whose message left the store are forgotten.
  for (const r of [...byKey.values()]) if (r.skipped && r.imapUid !== undefined && (vc.vanished.includes(r.imapUid) || (rebuild && !present.has(r.imapUid)))) await drop(r.syncKey);

  // 1b. Exchange.
  let deltaExpired = false;
  let ec: ContactChanges;
  try {
    ec = await exchange.changes(cursors.deltaLink);
  } catch (e) {
    if (!isConnectorError(e, "DELTA_TOKEN_EXPIRED")) throw e;
    deltaExpired = true;
    log.warn("graph.contacts.delta.expired", deps.ids);
    ec = await exchange.changes(undefined);
  }
  const graphNow = new Map<string, ContactSideView>();
  const graphFields = new Map<string, GraphContact>();
  if (!ec.full) for (const r of byKey.values()) if (r.graphId !== undefined && r.graphHash) graphNow.set(r.syncKey, { ref: r.graphId, hash: r.graphHash, mapped: r.graphHash, modified: "" });
  for (const id of ec.removed) { const r = byGraphId.get(id); if (r && graphNow.get(r.syncKey)?.ref === id) graphNow.delete(r.syncKey); }
  for (const c of ec.upserted) {
    graphFields.set(c.id, c);
    const r = byGraphId.get(c.id);
    const key = r?.syncKey ?? keyOfGraph(c.id);
    const h = mappedHash(c.fields);
    // A new photo makes the contact differ from the store's card too (mapped), so it is copied.
    const ph = await photoChange(exchange, c, r, h);
    graphNow.set(key, { ref: c.id, hash: h + ph, mapped: h + ph, modified: c.lastModifiedDateTime ?? "" });
  }

  // 1c. Contacts on both sides that neither has linked yet (first sync after another product):
  // one item each, never a duplicate (src/sync/contactAdoption.ts).
  const merged = adoptContacts(byKey, imapNow, graphNow, cards, graphFields);
  for (const a of merged.ambiguous) {
    await deps.putConflict({ syncKey: a.storeKey, at: new Date().toISOString(), kind: "contact-match", loser: "none", content: JSON.stringify({ candidates: a.candidates }), summary: `a store card fits ${a.candidates.length} Exchange contact(s), or another card fits the same one: copied, nothing merged` });
  }

  // 2. Plan.
  const keys = new Set<string>([...imapNow.keys(), ...graphNow.keys()]);
  for (const r of byKey.values()) if (!r.skipped) keys.add(r.syncKey);
  const views: ContactView[] = [...keys].map((syncKey) => {
    const r = byKey.get(syncKey);
    return {
      syncKey,
      link: r && !r.skipped ? { imapUid: r.imapUid, graphId: r.graphId, imapHash: r.imapHash, graphHash: r.graphHash, pendingGraphCreate: r.pendingGraphCreate } : undefined,
      imap: imapNow.get(syncKey),
      graph: graphNow.get(syncKey),
    };
  });
  const plan = planContacts(views, deps.limits);
  const report: ContactsSyncReport = { actions: emptyCounts(), conflicts: 0, duplicatesRemoved: 0, skipped, skippedTotal: 0, flagged: 0, massDelete: plan.massDelete, deltaExpired, adopted: merged.merged };

  // 3. Apply.
  const cardOf = async (uid: number): Promise<StoreCard> => {
    const known = cards.get(uid);
    if (known) return known;
    const [item] = await store.fetchSources([uid]);
    if (!item) throw new ConnectorError("IMAP_COMMAND_FAILED", `contact UID ${uid} is not on the store any more`, { imapUid: uid, transient: true });
    const card = await readCard(item);
    cards.set(uid, card);
    return card;
  };
  // Contacts that began on the store carry store-only properties in Exchange: read them back.
  const contactOf = async (key: string, id: string): Promise<GraphContact> => {
    const c = graphFields.get(id);
    return c && key.startsWith("g:") ? c : exchange.get(id);
  };
  const writeCard = async (key: string, c: GraphContact): Promise<{ uid: number; hash: string; mapped: string }> => {
    const fields: ContactFields = { ...c.fields, uid: key };
    const text = writeVCard(fields);
    const uid = await store.append(storeItemMessage({ kind: "vcard", key, subject: fields.displayName ?? fields.emailAddresses[0]?.address ?? "Contact", body: text }));
    const written = parseVCard(text);
    return { uid, hash: storeHash(written), mapped: mappedHash(written) };
  };
  const conflict = async (key: string, loser: "imap" | "graph", fields: ContactFields) => {
    await deps.putConflict({ syncKey: key, at: new Date().toISOString(), kind: "contact", loser, content: writeVCard({ ...fields, uid: key }), summary: fields.displayName });
    report.conflicts++;
    log.info("contacts.conflict", { ...deps.ids, syncKey: key, loser });
  };

  // A value Exchange would refuse was left out of the write (contactValidation.ts): flagged, never skipped.
  const flagsOf = (key: string, fields: ContactFields, more: Array<{ field: string; message: string }> = []): Pick<ContactRecord, "flags"> => {
    const refused = [...toGraphContact(fields).refused, ...more];
    if (!refused.length) return {};
    report.flagged++;
    log.warn("contacts.item.flagged", { ...deps.ids, syncKey: key, code: "CONTACT_VALUE_REFUSED", fields: refused.map((r) => r.field).join(",") });
    return { flags: refused };
  };
  // The card's photo to the Exchange contact photo (contactPhoto.ts): what Exchange cannot take stays on the store, flagged.
  const pushPhoto = async (graphId: string, fields: ContactFields): Promise<{ refused: Array<{ field: string; message: string }>; graphPhoto?: string }> => {
    const photo = cardPhoto(fields);
    if (!photo) return { refused: [] };
    const ok = photoForExchange(photo);
    if ("message" in ok) return { refused: [ok] };
    await exchange.putPhoto(graphId, ok);
    return { refused: [], graphPhoto: photoHash(ok) };
  };
  // Exchange's photo into the card written to the store.
  const withExchangePhoto = async (c: GraphContact): Promise<{ c: GraphContact; graphPhoto: string }> => {
    const photo = await exchange.getPhoto(c.id);
    return { c: { ...c, fields: withPhoto(c.fields, photo) }, graphPhoto: photoHash(photo) };
  };
  const apply = async (a: ContactAction): Promise<void> => {
    switch (a.kind) {
      case "createInGraph": {
        const card = await cardOf(a.imapUid);
        if (a.resume) {
          const found = await exchange.findBySyncKey(a.syncKey);
          if (found) { await put({ syncKey: a.syncKey, imapUid: a.imapUid, imapHash: card.hash, imapMapped: card.mapped, graphId: found.id, graphHash: mappedHash(found.fields) }); return; }
        }
        await put({ syncKey: a.syncKey, imapUid: a.imapUid, imapHash: card.hash, imapMapped: card.mapped, pendingGraphCreate: true });
        const created = await exchange.create(a.syncKey, card.fields);
        const pushed = await pushPhoto(created.id, card.fields);
        await put({ syncKey: a.syncKey, imapUid: a.imapUid, imapHash: card.hash, imapMapped: card.mapped, graphId: created.id, graphHash: mappedHash(created.fields), graphPhoto: pushed.graphPhoto, graphModified: pushed.graphPhoto === undefined ? created.lastModifiedDateTime : undefined, ...flagsOf(a.syncKey, card.fields, pushed.refused) });
        return;
      }
      case "createInImap": {
        const { c, graphPhoto } = await withExchangePhoto(await contactOf(a.syncKey, a.graphId));
        const w = await writeCard(a.syncKey, c);
        await put({ syncKey: a.syncKey, imapUid: w.uid, imapHash: w.hash, imapMapped: w.mapped, graphId: a.graphId, graphHash: mappedHash(c.fields), graphPhoto, graphModified: c.lastModifiedDateTime });
        return;
      }
      case "updateGraph": {
        const card = await cardOf(a.imapUid);
        if (a.conflictLoser) await conflict(a.syncKey, "graph", (await exchange.get(a.graphId)).fields);
        const updated = await exchange.update(a.graphId, card.fields);
        const pushed = await pushPhoto(a.graphId, card.fields);
        await put({ syncKey: a.syncKey, imapUid: a.imapUid, imapHash: card.hash, imapMapped: card.mapped, graphId: a.graphId, graphHash: mappedHash(updated.fields), graphPhoto: pushed.graphPhoto ?? byKey.get(a.syncKey)?.graphPhoto, graphModified: pushed.graphPhoto === undefined ? updated.lastModifiedDateTime : undefined, ...flagsOf(a.syncKey, card.fields, pushed.refused) });
        return;
      }
      case "updateImap": {
        const { c, graphPhoto } = await withExchangePhoto(await contactOf(a.syncKey, a.graphId));
        if (a.conflictLoser) await conflict(a.syncKey, "imap", (await cardOf(a.imapUid)).fields);
        // New card first, then the old one goes, then the record: a crash after the APPEND
        // leaves two cards with one key (the newest wins next run); after the EXPUNGE, the
        // record's UID has vanished and the new card is re-matched by its key.
        const w = await writeCard(a.syncKey, c);
        await store.remove(a.imapUid);
        await put({ syncKey: a.syncKey, imapUid: w.uid, imapHash: w.hash, imapMapped: w.mapped, graphId: a.graphId, graphHash: mappedHash(c.fields), graphPhoto, graphModified: c.lastModifiedDateTime });
        return;
      }
      case "deleteInGraph":
        try { await exchange.remove(a.graphId); } catch (e) { if (!isConnectorError(e, "GRAPH_NOT_FOUND")) throw e; }
        await drop(a.syncKey);
        return;
      case "deleteInImap":
        await store.remove(a.imapUid);
        await drop(a.syncKey);
        return;
      case "record": {
        const i = imapNow.get(a.syncKey)!;
        const g = graphNow.get(a.syncKey)!;
        await put({ ...byKey.get(a.syncKey), syncKey: a.syncKey, imapUid: a.imapUid, imapHash: i.hash, imapMapped: i.mapped, graphId: a.graphId, graphHash: g.hash.replace(/\|photo:.*$/, ""), pendingGraphCreate: undefined, skipped: undefined });
        return;
      }
      case "forget":
        await drop(a.syncKey);
        return;
    }
  };

  const queue = [...plan.actions];
  let fatal: ConnectorError | undefined;
  const worker = async () => {
    for (let a = queue.shift(); a && !fatal; a = queue.shift()) {
      try {
        await apply(a);
        report.actions[a.kind]++;
      } catch (e) {
        const err = ensureConnectorError(e, "INTERNAL", { ...deps.ids, syncKey: a.syncKey });
        if (err.transient || !ITEM_ERRORS.has(err.code)) { fatal ??= err; return; }
        const prev = byKey.get(a.syncKey);
        await put({ ...(prev ?? { syncKey: a.syncKey }), pendingGraphCreate: false, skipped: { code: err.code, message: err.message } });
        report.skipped++;
        log.warn("contacts.item.skipped", { ...deps.ids, syncKey: a.syncKey, code: err.code });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(deps.parallel ?? 8, queue.length) }, worker));
  if (fatal) throw fatal;
  for (const uid of new Set(duplicates)) { await store.remove(uid); report.duplicatesRemoved++; }

  // 4. Cursors last.
  if (plan.massDelete) {
    log.error("contacts.massDelete.refused", { ...deps.ids, ...plan.massDelete });
    throw new ConnectorError("MASS_DELETE_REFUSED",
      `refused to delete ${plan.massDelete.deletes} of ${plan.massDelete.known} contacts on the ${plan.massDelete.side === "graph" ? "Exchange" : "voice store"} side`,
      { ...deps.ids, transient: false });
  }
  await state.saveCursors({ imap: vc.cursor, deltaLink: ec.deltaLink });
  report.skippedTotal = [...byKey.values()].filter((r) => r.skipped).length;
  return report;
}
