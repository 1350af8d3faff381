/**
 * The contacts sync's view of one store card and one Exchange contact: parsed, hashed and
 * keyed. Hashes compare content across runs and across the sides: `mappedHash` covers the
 * fields both sides hold (a round trip through the Graph mapping, src/formats/contactMapping.ts),
 * `storeHash` the whole card (mapped fields plus what only the store holds).
 */
import crypto from "node:crypto";
import { ConnectorError, ensureConnectorError } from "../errors.js";
import type { Logger } from "../log.js";
import { parseVCard, type ContactFields } from "../formats/vcard.js";
import { normaliseNewlines, splitCards } from "../formats/vcardLines.js";
import { fromGraphContact, toGraphContact } from "../formats/contactMapping.js";
import type { Photo } from "../formats/contactPhoto.js";
import { storeItemMessage, storeItemText } from "../formats/storeItem.js";
import type { ContactStorePort, StoredSource } from "./ports.js";
import { eventLoopTurns } from "../eventLoop.js";

export const sha = (v: unknown) => crypto.createHash("sha256").update(JSON.stringify(v)).digest("base64url").slice(0, 22);

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

export const photoHash = (p: Photo | undefined) => (p ? sha(p.bytes.toString("base64")) : "");

export interface StoreCard { uid: number; fields: ContactFields; text: string; hash: string; mapped: string; modified: string }

export async function readCard(item: StoredSource): Promise<StoreCard> {
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

/** Sync key of a store card: its vCard UID, else one derived from its content (stable). */
export const keyOfCard = (c: StoreCard) => c.fields.uid ?? `vcard:${sha(c.text)}`;
/** Contacts that began in Exchange are keyed by their (immutable) Graph id. */
export const keyOfGraph = (id: string) => `g:${id}`;

/**
 * A stored message with several cards (an address book sent as one item): each card becomes a
 * message of its own (APPENDed first, the original EXPUNGEd after), so each is its own contact
 * and a broken one is skipped alone with its reason. A crash in between leaves the original
 * and some copies; the next run splits it again and the copies, having one key each, are
 * settled by the newest-wins rule for two cards with one key.
 */
export async function splitMultiCard(store: ContactStorePort, items: StoredSource[], log: Logger, ids: { tenantId: string; mailboxId: string }): Promise<StoredSource[]> {
  const out: StoredSource[] = [];
  const turn = eventLoopTurns();
  for (const item of items) {
    await turn();
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
