/**
 * Adoption (pure, no I/O): voice messages a previous product (Exchange UM, Cisco Unity
 * Connection Single Inbox, Avaya IMAPCSE, XPhone) already put into Exchange are matched to
 * the store messages they are copies of, so that the first sync links them instead of copying
 * every message a second time.
 *
 * A pair is made only when it is certain:
 *  1. the Internet Message-ID, where both sides have one (RFC 5322 section 3.6.4: unique per
 *     message; products that copy over IMAP or SMTP keep it);
 *  2. otherwise the caller's number, the time received within a tolerance, and the duration
 *     (PidTagVoiceMessageDuration, MS-OXPROPS 2.1061; sizes are no help, products re-encode).
 * Every candidate must match exactly one partner on each side. Anything else (two store
 * messages fitting one Exchange item, one store message fitting two) is ambiguous: never
 * merged, the store message is copied as new and the case is listed for the administrator;
 * nothing is deleted.
 */

/** A store message that has no link yet. */
export interface StoreCandidate {
  syncKey: string;
  uid: number;
  messageId?: string;
  /** Caller's number, digits only (leading + kept). */
  callerNumber?: string;
  receivedAt?: number;
  durationSeconds?: number;
}

/** A voice message in the Exchange folder that carries no sync key (made by another product). */
export interface ForeignItem {
  id: string;
  isRead: boolean;
  messageClass?: string;
  internetMessageId?: string;
  callerNumber?: string;
  receivedAt?: number;
  durationSeconds?: number;
}

export interface AdoptionPair { syncKey: string; uid: number; graphId: string; how: "message-id" | "caller-time-duration" }
export interface AmbiguousMatch { syncKey: string; uid: number; candidates: string[]; reason: string }

export interface AdoptionOptions {
  /** Largest difference between the two received times (default 120 s: products stamp delivery, not deposit). */
  toleranceSeconds?: number;
  /** Largest duration difference in seconds (rounding differs between products; default 1). */
  durationSlackSeconds?: number;
}

/**
 * Message classes of voice messages made by other products: MS-OXOUM 2.2.2.1 (Exchange UM:
 * IPM.Note.Microsoft.Voicemail.UM(.CA), fax IPM.Note.Microsoft.Fax.CA, protected
 * IPM.Note.rpmsg.Microsoft.Voicemail.UM(.CA)). Items of other classes count only when they
 * carry a voice-message duration (PidTagVoiceMessageDuration), which products that write
 * plain IPM.Note items set through X-VoiceMessageDuration (MS-OXCMAIL 2.2.3.2.23).
 */
export function isForeignVoiceItem(i: Pick<ForeignItem, "messageClass" | "durationSeconds">): boolean {
  const c = (i.messageClass ?? "").toLowerCase();
  if (/^ipm\.note(\.rpmsg)?\.microsoft\.(voicemail|fax)/.test(c)) return true;
  if (c.startsWith("ipm.note.microsoft.missed")) return false; // a missed-call notice has no store message
  return i.durationSeconds !== undefined;
}

export const normaliseMessageId = (id: string | undefined) => id?.trim().replace(/^<|>$/g, "").toLowerCase() || undefined;
/** Digits only, without the national trunk prefix or international zeros ("030 1234", "+49 30 1234", "0049301234"). */
export const normaliseNumber = (n: string | undefined) => { const d = n?.replace(/[^0-9]/g, "").replace(/^0+/, ""); return d && d.length >= 3 ? d : undefined; };
/**
 * One caller in national and international form: the shorter number (at least 6 digits, an
 * internal extension must match exactly) is the end of the longer one (E.164 adds only the
 * country code in front: ITU-T E.164 section 6).
 */
export function sameNumber(a: string | undefined, b: string | undefined): boolean {
  const x = normaliseNumber(a);
  const y = normaliseNumber(b);
  if (!x || !y) return false;
  if (x === y) return true;
  const [short, long] = x.length <= y.length ? [x, y] : [y, x];
  return short.length >= 6 && long.endsWith(short);
}

export function matchAdoptions(store: StoreCandidate[], foreign: ForeignItem[], opts: AdoptionOptions = {}): { pairs: AdoptionPair[]; ambiguous: AmbiguousMatch[] } {
  const byId = matchByMessageId(store, foreign);
  const byContent = matchByContent(byId.rest, foreign, byId.taken, opts);
  return { pairs: [...byId.pairs, ...byContent.pairs], ambiguous: [...byId.ambiguous, ...byContent.ambiguous] };
}

/**
 * Step 1 alone: the Message-ID, unique on both sides (the same message whatever class the
 * product gave it). `rest`: the store messages whose Message-ID fits no Exchange item, for
 * step 2; `taken`: the Exchange items paired here.
 */
export function matchByMessageId(store: StoreCandidate[], foreign: ForeignItem[]): { pairs: AdoptionPair[]; ambiguous: AmbiguousMatch[]; rest: StoreCandidate[]; taken: Set<string> } {
  const pairs: AdoptionPair[] = [];
  const ambiguous: AmbiguousMatch[] = [];
  const taken = new Set<string>();
  const byMid = new Map<string, ForeignItem[]>();
  for (const f of foreign) { const k = normaliseMessageId(f.internetMessageId); if (k) byMid.set(k, [...(byMid.get(k) ?? []), f]); }
  const storeMids = new Map<string, number>();
  for (const s of store) { const k = normaliseMessageId(s.messageId); if (k) storeMids.set(k, (storeMids.get(k) ?? 0) + 1); }
  const rest: StoreCandidate[] = [];
  for (const s of store) {
    const k = normaliseMessageId(s.messageId);
    const hits = k ? byMid.get(k) ?? [] : [];
    if (hits.length === 1 && storeMids.get(k!) === 1) { pairs.push({ syncKey: s.syncKey, uid: s.uid, graphId: hits[0]!.id, how: "message-id" }); taken.add(hits[0]!.id); }
    else if (hits.length > 1 || (hits.length === 1 && storeMids.get(k!)! > 1)) ambiguous.push({ syncKey: s.syncKey, uid: s.uid, candidates: hits.map((h) => h.id), reason: "the same Message-ID on more than one message" });
    else rest.push(s);
  }
  return { pairs, ambiguous, rest, taken };
}

/** The Exchange voice items step 2 can still pair: not `taken` by step 1, with a received time. */
export function openForContent(foreign: ForeignItem[], taken: ReadonlySet<string>): ForeignItem[] {
  // Caller, time and duration say "a voice message" only on items that are voice messages.
  return foreign.filter((f) => isForeignVoiceItem(f) && !taken.has(f.id) && f.receivedAt !== undefined);
}

/** Step 2: caller + time + duration, each side matching exactly one on the other. */
export function matchByContent(rest: StoreCandidate[], foreign: ForeignItem[], taken: ReadonlySet<string>, opts: AdoptionOptions = {}): { pairs: AdoptionPair[]; ambiguous: AmbiguousMatch[] } {
  const pairs: AdoptionPair[] = [];
  const ambiguous: AmbiguousMatch[] = [];
  const tol = (opts.toleranceSeconds ?? 120) * 1000;
  const slack = opts.durationSlackSeconds ?? 1;
  const open = openForContent(foreign, taken);
  // Sorted by time, so each store message looks only at the items inside its window.
  open.sort((a, b) => a.receivedAt! - b.receivedAt!);
  const fits = (s: StoreCandidate, f: ForeignItem) => {
    if (!sameNumber(s.callerNumber, f.callerNumber)) return false;
    // Caller and time alone are not enough. (Sizes are no help: products re-encode the audio.)
    return s.durationSeconds !== undefined && f.durationSeconds !== undefined && Math.abs(s.durationSeconds - f.durationSeconds) <= slack;
  };
  const candidates = new Map<StoreCandidate, ForeignItem[]>();
  const claimedBy = new Map<string, number>();
  for (const s of rest) {
    if (s.receivedAt === undefined) continue;
    const from = lowerBound(open, s.receivedAt - tol);
    const hits: ForeignItem[] = [];
    for (let i = from; i < open.length && open[i]!.receivedAt! <= s.receivedAt + tol; i++) if (fits(s, open[i]!)) hits.push(open[i]!);
    if (!hits.length) continue;
    candidates.set(s, hits);
    for (const h of hits) claimedBy.set(h.id, (claimedBy.get(h.id) ?? 0) + 1);
  }
  for (const [s, hits] of candidates) {
    if (hits.length === 1 && claimedBy.get(hits[0]!.id) === 1) pairs.push({ syncKey: s.syncKey, uid: s.uid, graphId: hits[0]!.id, how: "caller-time-duration" });
    else ambiguous.push({ syncKey: s.syncKey, uid: s.uid, candidates: hits.map((h) => h.id), reason: hits.length > 1 ? `${hits.length} Exchange items fit (same caller, time and duration)` : "another store message fits the same Exchange item" });
  }
  return { pairs, ambiguous };
}

function lowerBound(sorted: ForeignItem[], t: number): number {
  let lo = 0, hi = sorted.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (sorted[mid]!.receivedAt! < t) lo = mid + 1; else hi = mid; }
  return lo;
}
