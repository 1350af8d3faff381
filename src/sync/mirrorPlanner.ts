/**
 * The disaster-recovery mirror's planner (pure): what one run does to make one backup folder
 * match its production folder, one way (production -> backup).
 *
 * Identity. A message is the same on both stores when its Message-ID, INTERNALDATE and
 * RFC822.SIZE agree (mirrorIdentity). Voice stores treat their messages as the voice system's
 * own records: adding an X-UMC header on the backup would change the size and the bytes a
 * failover system plays back, and some stores refuse or rewrite messages whose headers they do
 * not know, so no header of ours is written. APPEND keeps the bytes (hence the size) and takes
 * the INTERNALDATE we give it (RFC 3501 section 6.3.11), so the identity survives the copy.
 * UIDs are only hints: a UIDVALIDITY change on either side (RFC 3501 section 2.3.1.1) voids
 * them, and the pairs are matched again by identity, never copied again.
 *
 * Crash safety (mbsync's journal, isync's mbsync(1) "SyncState" and its .journal file): a
 * journal row naming the identity is written before every APPEND, and removed with the pair row
 * the APPEND produced. A run that finds journal rows left by a crash asks the backup whether
 * the identity is there (the executor resolves them before planning): found, the pair is
 * recorded; not found, the message is simply still to copy. So a crash at any step leaves
 * neither a duplicate nor a loss.
 *
 * One way: the backup's own changes are not copied back; a full verify (timer, or `umconnect
 * mirror repair`) puts back what is missing on the backup, fixes its flags and removes what
 * production no longer has. A message only the backup has, that the mirror never copied, is
 * reported as extra and left alone (it may be the backup system's own, e.g. after a failover).
 */
import { massDeleteCheck, type MassDelete, type MassDeleteLimits } from "./massDelete.js";

/** One message as a mirror side lists it. */
export interface MirrorMessage {
  uid: number;
  identity: string;
  /** System flags and keywords, without \Recent (session-only, RFC 3501 section 2.3.2). */
  flags: string[];
  internalDate?: string;
  size?: number;
}

/** A message the mirror has copied (or found already on the backup): both UIDs and the flags it last set. */
export interface MirrorPair {
  identity: string;
  srcUid?: number;
  tgtUid?: number;
  flags: string[];
  /** The backup refused the copy (APPEND answered NO): why, how often, and when to try again. */
  failed?: { code: string; reason: string; attempts: number; retryAt: string };
}

/** Written before an APPEND, removed with the pair row the APPEND produced. */
export interface MirrorJournalEntry {
  identity: string;
  srcUid: number;
  at: string;
}

export interface MirrorPlanInput {
  /**
   * "full": `source` and `target` list every message of their folder. "incremental": `source`
   * lists the messages whose flags changed or that are new since the cursor (RFC 7162
   * CHANGEDSINCE), `vanished` the UIDs expunged since (QRESYNC), and the backup is not listed.
   */
  mode: "full" | "incremental";
  source: MirrorMessage[];
  target?: MirrorMessage[];
  vanished?: number[];
  pairs: MirrorPair[];
  now: Date;
  limits: MassDeleteLimits;
}

export interface MirrorPlan {
  /** Copies to make, oldest UID first. */
  append: Array<{ identity: string; srcUid: number; flags: string[]; internalDate?: string; size?: number; retry?: MirrorPair["failed"] }>;
  /** Backup messages whose flags differ from production's. */
  setFlags: Array<{ identity: string; tgtUid: number; flags: string[]; srcUid: number }>;
  /** Backup messages whose production original was expunged (held back when the guard refuses). */
  expunge: Array<{ identity: string; tgtUid: number }>;
  /** Pair rows to write without any store action (UIDs re-matched after a UIDVALIDITY change, pairs found on the backup). */
  putPairs: MirrorPair[];
  /** Pair rows to drop (gone from both sides). */
  dropPairs: string[];
  /** Backup messages the mirror did not copy and production does not have (full runs): left alone. */
  extra: MirrorMessage[];
  massDelete?: MassDelete;
  /** Copies refused earlier whose retry is not due yet. */
  waiting: number;
}

/** The identity of a message (see the file comment): Message-ID, INTERNALDATE (UTC, seconds), RFC822.SIZE. */
export function mirrorIdentity(m: { messageId?: string; internalDate?: Date | string; size?: number }): string {
  const d = m.internalDate === undefined ? "" : new Date(m.internalDate);
  const date = d === "" || !Number.isFinite(d.getTime()) ? "" : d.toISOString().replace(/\.\d{3}Z$/, "Z");
  return `${(m.messageId ?? "").trim()}|${date}|${m.size ?? ""}`;
}

/** The identity's parts back (journal resolution searches the backup by them). */
export function parseIdentity(identity: string): { messageId?: string; internalDate?: string; size?: number } {
  const i = identity.lastIndexOf("|");
  const j = identity.lastIndexOf("|", i - 1);
  const messageId = identity.slice(0, j);
  const date = identity.slice(j + 1, i);
  const size = identity.slice(i + 1);
  return { messageId: messageId || undefined, internalDate: date || undefined, size: size ? Number(size) : undefined };
}

/** Flags compared as sets; \Recent is the server's, per session, and never copied. */
export function normalFlags(flags: Iterable<string>): string[] {
  return [...new Set([...flags].filter((f) => f.toLowerCase() !== "\\recent"))].sort();
}
const sameFlags = (a: string[], b: string[]) => a.length === b.length && normalFlags(a).every((f, i) => f === normalFlags(b)[i]);

/** Waits before a refused copy is tried again: 1, 2, 4 ... minutes, at most 6 hours. */
export function retryDelayMs(attempts: number): number {
  return Math.min(6 * 3600_000, 60_000 * 2 ** Math.max(0, attempts - 1));
}

export function planMirror(input: MirrorPlanInput): MirrorPlan {
  const plan: MirrorPlan = { append: [], setFlags: [], expunge: [], putPairs: [], dropPairs: [], extra: [], waiting: 0 };
  const pairs = new Map(input.pairs.map((p) => [p.identity, p]));
  const pairBySrc = new Map<number, MirrorPair>();
  for (const p of input.pairs) if (p.srcUid !== undefined) pairBySrc.set(p.srcUid, p);
  const now = input.now.getTime();

  const copy = (m: MirrorMessage, pair: MirrorPair | undefined) => {
    if (pair?.failed && Date.parse(pair.failed.retryAt) > now) { plan.waiting++; return; }
    plan.append.push({ identity: m.identity, srcUid: m.uid, flags: normalFlags(m.flags), internalDate: m.internalDate, size: m.size, ...(pair?.failed ? { retry: pair.failed } : {}) });
  };

  if (input.mode === "incremental") {
    for (const m of input.source) {
      const pair = pairs.get(m.identity);
      if (!pair || pair.tgtUid === undefined) { copy(m, pair); continue; }
      if (!sameFlags(pair.flags, m.flags)) plan.setFlags.push({ identity: m.identity, tgtUid: pair.tgtUid, flags: normalFlags(m.flags), srcUid: m.uid });
      else if (pair.srcUid !== m.uid) plan.putPairs.push({ ...pair, srcUid: m.uid });
    }
    const gone: MirrorPair[] = [];
    for (const uid of input.vanished ?? []) {
      const pair = pairBySrc.get(uid);
      if (!pair) continue;
      if (pair.tgtUid === undefined) plan.dropPairs.push(pair.identity); // a copy never made (refused): nothing on the backup
      else gone.push(pair);
    }
    guardDeletes(plan, gone, input, input.pairs.filter((p) => p.tgtUid !== undefined).length);
    // Copies refused earlier whose retry is due, though production did not change them.
    const listed = new Set(input.source.map((m) => m.identity));
    const vanished = new Set(input.vanished ?? []);
    for (const p of input.pairs) {
      if (!p.failed || p.srcUid === undefined || listed.has(p.identity) || vanished.has(p.srcUid)) continue;
      if (Date.parse(p.failed.retryAt) > now) { plan.waiting++; continue; }
      const { messageId: _m, internalDate, size } = parseIdentity(p.identity);
      plan.append.push({ identity: p.identity, srcUid: p.srcUid, flags: p.flags, internalDate, size, retry: p.failed });
    }
    plan.append.sort((a, b) => a.srcUid - b.srcUid);
    return plan;
  }

  // Full: both folders listed.
  const target = new Map<string, MirrorMessage>();
  for (const t of input.target ?? []) if (!target.has(t.identity)) target.set(t.identity, t);
  const sourceIds = new Set<string>();
  for (const m of input.source) {
    sourceIds.add(m.identity);
    const pair = pairs.get(m.identity);
    const t = target.get(m.identity);
    if (!t) { copy(m, pair); continue; }
    // On both: re-match the UIDs (a UIDVALIDITY change, a lost pair row), then the flags.
    const flagsDiffer = !sameFlags(t.flags, m.flags);
    if (flagsDiffer) plan.setFlags.push({ identity: m.identity, tgtUid: t.uid, flags: normalFlags(m.flags), srcUid: m.uid });
    else if (!pair || pair.srcUid !== m.uid || pair.tgtUid !== t.uid || !sameFlags(pair.flags, m.flags) || pair.failed) {
      plan.putPairs.push({ identity: m.identity, srcUid: m.uid, tgtUid: t.uid, flags: normalFlags(m.flags) });
    }
  }
  const gone: MirrorPair[] = [];
  for (const t of input.target ?? []) {
    if (sourceIds.has(t.identity)) continue;
    const pair = pairs.get(t.identity);
    // Only what the mirror copied is removed; anything else on the backup is not ours to delete.
    if (pair) gone.push({ ...pair, tgtUid: t.uid });
    else plan.extra.push(t);
  }
  for (const p of input.pairs) if (!sourceIds.has(p.identity) && !target.has(p.identity)) plan.dropPairs.push(p.identity);
  const known = input.pairs.filter((p) => p.tgtUid !== undefined && target.has(p.identity)).length;
  guardDeletes(plan, gone, input, known);
  plan.append.sort((a, b) => a.srcUid - b.srcUid);
  return plan;
}

/** The mass-delete guard (point 6): a production wipe must not empty the backup. */
function guardDeletes(plan: MirrorPlan, gone: MirrorPair[], input: MirrorPlanInput, known: number) {
  if (!gone.length) return;
  const sourcePresent = input.mode === "full" ? input.source.length : Math.max(0, known - gone.length);
  const verdict = massDeleteCheck({ linked: known, imapPresent: sourcePresent, graphPresent: known, graphDeletes: gone.length, imapDeletes: 0 }, input.limits);
  if (verdict?.refused) { plan.massDelete = verdict; return; }
  for (const p of gone) plan.expunge.push({ identity: p.identity, tgtUid: p.tgtUid! });
}

export interface MirrorComparison {
  production: number;
  backup: number;
  /** On production, not on the backup. */
  missing: string[];
  /** On the backup, not on production. */
  extra: string[];
  /** On both, with other flags on the backup. */
  flagDifferences: Array<{ identity: string; production: string[]; backup: string[] }>;
  /** More than one copy of one identity on the backup. */
  duplicates: string[];
}

/** `umconnect mirror verify`: both folders compared by identity (nothing written). */
export function compareMirror(source: MirrorMessage[], target: MirrorMessage[]): MirrorComparison {
  const t = new Map<string, MirrorMessage>();
  const duplicates = new Set<string>();
  for (const m of target) { if (t.has(m.identity)) duplicates.add(m.identity); else t.set(m.identity, m); }
  const s = new Set(source.map((m) => m.identity));
  const out: MirrorComparison = { production: source.length, backup: target.length, missing: [], extra: [], flagDifferences: [], duplicates: [...duplicates] };
  for (const m of source) {
    const b = t.get(m.identity);
    if (!b) out.missing.push(m.identity);
    else if (!sameFlags(m.flags, b.flags)) out.flagDifferences.push({ identity: m.identity, production: normalFlags(m.flags), backup: normalFlags(b.flags) });
  }
  for (const m of t.values()) if (!s.has(m.identity)) out.extra.push(m.identity);
  return out;
}
