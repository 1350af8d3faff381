/**
 * Contacts already on both sides before the first sync (the previous product synced them, or
 * the user keyed them in twice): a store card and an Exchange contact that neither side has
 * linked yet are the same person when their normalised names are equal and they share a phone
 * number or an e-mail address. Such a pair becomes one item (the planner then records it, or
 * merges it with "latest wins, the loser kept"); a card that fits several contacts, or a
 * contact several cards fit, is ambiguous: both stay as they are, copied across, and listed.
 * Pure: no I/O.
 */
import type { ContactFields } from "../formats/vcard.js";
import { normaliseNumber } from "./adoption.js";

export interface UnlinkedContact { key: string; fields: ContactFields }

/** Lower case, accents and punctuation gone, words sorted ("Lee, Ann" = "Ann Lee" = "ann  lée"). */
export function normaliseName(f: ContactFields): string | undefined {
  const raw = [f.givenName, f.middleName, f.surname].filter(Boolean).join(" ") || f.displayName || "";
  const words = raw.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
  return words.length ? words.sort().join(" ") : undefined;
}

function handles(f: ContactFields): Set<string> {
  const out = new Set<string>();
  for (const e of f.emailAddresses) if (e.address) out.add(`mail:${e.address.trim().toLowerCase()}`);
  for (const p of [...f.businessPhones, ...f.homePhones, f.mobilePhone]) { const n = normaliseNumber(p); if (n && n.length >= 6) out.add(`tel:${n.slice(-9)}`); }
  return out;
}

export function matchContacts(store: UnlinkedContact[], exchange: UnlinkedContact[]): { pairs: Array<{ storeKey: string; graphKey: string }>; ambiguous: Array<{ storeKey: string; candidates: string[] }> } {
  const byName = new Map<string, Array<{ c: UnlinkedContact; h: Set<string> }>>();
  for (const c of exchange) { const n = normaliseName(c.fields); if (n) byName.set(n, [...(byName.get(n) ?? []), { c, h: handles(c.fields) }]); }
  const hits = new Map<string, string[]>();
  const claimed = new Map<string, number>();
  for (const s of store) {
    const n = normaliseName(s.fields);
    if (!n) continue;
    const mine = handles(s.fields);
    const fit = (byName.get(n) ?? []).filter((x) => [...x.h].some((h) => mine.has(h))).map((x) => x.c.key);
    if (!fit.length) continue;
    hits.set(s.key, fit);
    for (const k of fit) claimed.set(k, (claimed.get(k) ?? 0) + 1);
  }
  const pairs: Array<{ storeKey: string; graphKey: string }> = [];
  const ambiguous: Array<{ storeKey: string; candidates: string[] }> = [];
  for (const [storeKey, fit] of hits) {
    if (fit.length === 1 && claimed.get(fit[0]!) === 1) pairs.push({ storeKey, graphKey: fit[0]! });
    else ambiguous.push({ storeKey, candidates: fit });
  }
  return { pairs, ambiguous };
}
