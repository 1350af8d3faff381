/**
 * The disaster-recovery mirror's executor: one run for one folder pair (production -> backup),
 * planned by src/sync/mirrorPlanner.ts (identity, journal and crash safety are explained there).
 *
 * Order of one run:
 *  1. SELECT both folders; production with QRESYNC from the saved cursor. Nothing changed on
 *     production, the backup's UIDVALIDITY unchanged, no refused copy due: the run ends here
 *     (two SELECTs and one state read: O(changes) with CONDSTORE).
 *  2. Load the pairs (only those of the changed messages, unless the run is full, production
 *     expunged messages, or refused copies wait for a retry) and any journal rows; each journal
 *     row (a crash between "about to APPEND" and "copied") is resolved by searching the backup
 *     for its identity.
 *  3. Plan; write re-matched pairs; STORE flags; UID EXPUNGE what production expunged (unless
 *     the mass-delete guard refuses); then the copies in batches: journal rows for the batch
 *     (one transaction), one FETCH for the batch's bodies, one MULTIAPPEND (or one APPEND
 *     each; INTERNALDATE and flags kept, UIDPLUS APPENDUID for the new UIDs), then the batch's
 *     pairs with its journal cleared (one transaction). The batches are pipelined: fetch,
 *     journal and pairs of the neighbouring batches run while one batch is appended.
 *  4. Save the cursors last.
 *
 * A copy the backup refuses (APPEND answered NO: too large, charset, quota) is recorded on its
 * pair with the reason and tried again with backoff (retryDelayMs); the rest goes on.
 */
import { ConnectorError, ensureConnectorError } from "../errors.js";
import type { Logger } from "../log.js";
import type { MassDelete, MassDeleteLimits } from "./massDelete.js";
import { planMirror, retryDelayMs, type MirrorMessage, type MirrorPair } from "./mirrorPlanner.js";
import type { MirrorCursors, MirrorSourcePort, MirrorStatePort, MirrorTargetPort } from "./mirrorPorts.js";

/** Copies per batch: one FETCH of bodies, one journal row, one MULTIAPPEND (about 2.7 MB of 55 KB voice messages), one pairs transaction (its pairs and its journal row: at most 100 operations). */
const BODY_BATCH_DEFAULT = 50;
/** Changed messages whose pairs an incremental run reads one by one; more, and it lists them all (step 2). */
const POINT_READS_MAX = 32;

export interface MirrorSyncInput {
  source: MirrorSourcePort;
  target: MirrorTargetPort;
  state: MirrorStatePort;
  limits: MassDeleteLimits;
  log: Logger;
  /** "verify": list both folders in full (the timer's full verify, `umconnect mirror repair`). */
  mode?: "incremental" | "verify";
  now?: () => Date;
  batch?: number;
  /** True once the run's time is up: the batch at hand is the last and the cursors stay unsaved. */
  timeUp?(): boolean;
  /** Backup connections appending at once (1: only `target`). */
  lanes?: number;
  /** Opens the extra backup connection number `i` (1..lanes-1) on the same folder; undefined when it cannot be had now. */
  appendLane?(i: number): Promise<MirrorTargetPort | undefined>;
}

export interface MirrorSyncReport {
  mode: "noop" | "incremental" | "full";
  copied: number;
  flagsSet: number;
  expunged: number;
  rematched: number;
  journalResolved: { found: number; missing: number };
  refused: Array<{ identity: string; code: string; reason: string; attempts: number }>;
  /** Copies still to make (refused ones waiting for their retry, and those left when time was up). */
  backlog: number;
  /** Copies left for a follow-up run because this run's time was up (its cursors are unsaved). */
  unfinished?: number;
  extra: number;
  massDelete?: MassDelete;
  /** Time the copy pipeline stood waiting for each stage, in ms, summed over the append lanes (where a copy's time goes; benchmark). */
  waitedMs: { fetch: number; journal: number; append: number; commit: number };
}

/** APPEND refusals that concern the message itself (RFC 5530 response codes, Dovecot's texts): recorded and retried later. */
function refusal(e: unknown): { code: string; reason: string } | undefined {
  const err = ensureConnectorError(e);
  if (err.code !== "IMAP_COMMAND_FAILED" && err.code !== "PAYLOAD_TOO_LARGE") return undefined;
  const cause = err.cause as { serverResponseCode?: string; responseText?: string; message?: string } | undefined;
  const code = cause?.serverResponseCode ?? (err.code === "PAYLOAD_TOO_LARGE" ? "TOOBIG" : "REFUSED");
  return { code, reason: (cause?.responseText ?? err.message).slice(0, 300) };
}

export async function syncMirror(input: MirrorSyncInput): Promise<MirrorSyncReport> {
  const { source, target, state, log } = input;
  const now = input.now ?? (() => new Date());
  const batchSize = input.batch ?? BODY_BATCH_DEFAULT;
  const report: MirrorSyncReport = { mode: "noop", copied: 0, flagsSet: 0, expunged: 0, rematched: 0, journalResolved: { found: 0, missing: 0 }, refused: [], backlog: 0, extra: 0, waitedMs: { fetch: 0, journal: 0, append: 0, commit: 0 } };

  const cursors = await state.loadCursors();
  const verify = input.mode === "verify";
  const tgtCursor = await target.open();
  const targetReset = cursors.target !== undefined && cursors.target.uidValidity !== tgtCursor.uidValidity;
  // A backup whose UIDVALIDITY changed, or a run without a saved cursor, compares both sides.
  const changes = await source.changes(cursors.source, verify || targetReset || !cursors.target);
  const retryDue = cursors.retryAt !== undefined && Date.parse(cursors.retryAt) <= now().getTime();
  if (!changes.full && !changes.messages.length && !changes.vanished.length && !retryDue) {
    report.backlog = cursors.backlog ?? 0;
    if (cursors.source?.highestModseq !== changes.cursor.highestModseq) await state.saveCursors({ ...cursors, source: changes.cursor, target: tgtCursor, lastRunAt: now().toISOString() });
    return report;
  }
  report.mode = changes.full ? "full" : "incremental";

  // State read O(changes): the pairs of the messages production reports new or changed, by
  // point reads. All pairs where the plan needs them: a full run compares both folders,
  // VANISHED names production UIDs (pairs are keyed by identity), and refused copies waiting
  // for a retry are found among all pairs (the cursors say whether there are any: retryAt).
  // And where listing is cheaper: a listing page holds 1,000 rows for one Table transaction
  // (and answers faster than as many point reads), so beyond one round of point reads the
  // listing costs fewer transactions unless the folder holds tens of thousands of pairs.
  const needAll = changes.full || changes.vanished.length > 0 || cursors.retryAt !== undefined || changes.messages.length > POINT_READS_MAX;
  const loaded = await state.loadPairs(needAll ? undefined : changes.messages.map((m) => m.identity));
  const pairs = new Map(loaded.pairs.map((p) => [p.identity, p]));
  // Journal rows left by a crash: the APPEND may or may not have reached the backup.
  if (loaded.journal.length) {
    const put: MirrorPair[] = [];
    for (const j of loaded.journal) {
      const uid = await target.find(j.identity);
      if (uid === undefined) { report.journalResolved.missing++; continue; }
      report.journalResolved.found++;
      const known = pairs.get(j.identity);
      const flags = known?.flags ?? (await source.list([j.srcUid]))[0]?.flags ?? [];
      const pair: MirrorPair = { identity: j.identity, srcUid: j.srcUid, tgtUid: uid, flags };
      pairs.set(j.identity, pair);
      put.push(pair);
    }
    await state.commit({ put, drop: [], clearJournal: loaded.journal.map((j) => j.identity) });
    log.info("mirror.journal.resolved", report.journalResolved);
  }

  let targetList: MirrorMessage[] | undefined;
  if (changes.full) targetList = await target.list();
  const plan = planMirror({ mode: changes.full ? "full" : "incremental", source: changes.messages, target: targetList, vanished: changes.vanished, pairs: [...pairs.values()], now: now(), limits: input.limits });
  report.extra = plan.extra.length;

  if (plan.putPairs.length || plan.dropPairs.length) {
    report.rematched = plan.putPairs.length;
    await state.commit({ put: plan.putPairs, drop: plan.dropPairs, clearJournal: [] });
  }
  for (const f of plan.setFlags) {
    await target.setFlags(f.tgtUid, f.flags);
    await state.commit({ put: [{ identity: f.identity, srcUid: f.srcUid, tgtUid: f.tgtUid, flags: f.flags }], drop: [], clearJournal: [] });
    report.flagsSet++;
  }
  if (plan.massDelete) {
    report.massDelete = plan.massDelete;
    log.warn("mirror.massDelete.refused", { deletes: plan.massDelete.deletes, known: plan.massDelete.known, pattern: plan.massDelete.pattern });
  }
  if (plan.expunge.length) {
    await target.expunge(plan.expunge.map((x) => x.tgtUid));
    await state.commit({ put: [], drop: plan.expunge.map((x) => x.identity), clearJournal: [] });
    report.expunged = plan.expunge.length;
  }

  let retryAt: number | undefined;
  const noteRetry = (at: string) => { const t = Date.parse(at); if (retryAt === undefined || t < retryAt) retryAt = t; };
  for (const p of pairs.values()) if (p.failed && !plan.append.some((a) => a.identity === p.identity)) noteRetry(p.failed.retryAt);

  const batches: Array<typeof plan.append> = [];
  for (let i = 0; i < plan.append.length; i += batchSize) batches.push(plan.append.slice(i, i + batchSize));
  // The copies as a pipeline on separate channels, so that none waits for the others' round
  // trips (mbsync pipelines the same way): production's FETCH of the next batch, its journal
  // and the pairs of the batches already appended (Table Storage) all run while batches are
  // appended to the backup. The APPENDs themselves go out on up to `lanes` backup connections
  // at once (src/app/mirror.ts opens the extra ones): the backup's time to store a batch is
  // most of a copy's time, and a store such as Dovecot serves each connection in its own
  // process, taking its lock only to assign UIDs. The backup's UID order then follows the
  // batches' arrival, not production's; identities pair the messages, and INTERNALDATE (what
  // the phone sorts by) is kept. What keeps it crash safe is unchanged: a batch's APPEND is sent
  // only once its journal rows are written, and its journal rows are cleared only together
  // with its pairs, after its APPEND was answered; cursors are saved after every batch's pairs.
  // Once the run's time is up no further batch is taken (every run copies one): the batches
  // already fetched and journalled are appended, and the rest is a follow-up run's.
  let stopAt = batches.length;
  let taken = 0;
  let failed = false;
  // Backup connections appending at once (also how many batches are fetched ahead).
  const wanted = Math.min(input.lanes ?? 1, batches.length);
  const fetchOf = (b: number) => source.fetchBodies(batches[b]!.map((a) => a.srcUid));
  const journalOf = (b: number) => state.journal(batches[b]!.map((a) => ({ identity: a.identity, srcUid: a.srcUid, at: now().toISOString() })));
  // Each stage's promise is awaited in its turn; until then a failure must not be unhandled.
  const inFlight = <T>(p: Promise<T>) => { p.catch(() => undefined); return p; };
  const prepared = new Map<number, { bodies: ReturnType<typeof fetchOf>; journal: Promise<void> }>();
  const prepare = (b: number) => { if (b < stopAt && !prepared.has(b)) prepared.set(b, { bodies: inFlight(fetchOf(b)), journal: inFlight(journalOf(b)) }); };
  const commits: Array<Promise<void>> = [];

  const copyBatch = async (target: MirrorTargetPort, b: number, lastCommit: Promise<void> | undefined): Promise<{ commit: Promise<void> }> => {
    const batch = batches[b]!;
    const { bodies: bodiesOf, journal } = prepared.get(b)!;
    prepared.delete(b);
    let t = performance.now();
    const waited = (stage: keyof MirrorSyncReport["waitedMs"]) => { const n = performance.now(); report.waitedMs[stage] += n - t; t = n; };
    const bodies = await bodiesOf;
    waited("fetch");
    // mbsync-style: the journal names every APPEND of the batch before the first is sent.
    await journal;
    waited("journal");
    const put: MirrorPair[] = [];
    const drop: string[] = [];
    const ready: Array<(typeof batch)[number] & { body: { source: Buffer; internalDate?: Date } }> = [];
    for (const a of batch) {
      const body = bodies.get(a.srcUid);
      if (!body) drop.push(a.identity); // expunged on production meanwhile: the next run's VANISHED says so
      else ready.push({ ...a, body });
    }
    const dateOf = (a: (typeof ready)[number]) => a.body.internalDate ?? (a.internalDate ? new Date(a.internalDate) : undefined);
    let many: number[] | undefined;
    if (target.appendMany && ready.length > 1) {
      try {
        many = await target.appendMany(ready.map((a) => ({ source: a.body.source, flags: a.flags, internalDate: dateOf(a), identity: a.identity })));
      } catch (e) {
        // MULTIAPPEND is all or nothing (RFC 3502): one refused message refuses the batch; each is then tried alone.
        if (!refusal(e)) throw e;
      }
    }
    for (let k = 0; k < ready.length; k++) {
      const a = ready[k]!;
      try {
        const uid = many ? many[k]! : await target.append(a.body.source, a.flags, dateOf(a), a.identity);
        put.push({ identity: a.identity, srcUid: a.srcUid, tgtUid: uid, flags: a.flags });
        report.copied++;
      } catch (e) {
        const r = refusal(e);
        if (!r) throw e;
        const attempts = (a.retry?.attempts ?? 0) + 1;
        const failure = { ...r, attempts, retryAt: new Date(now().getTime() + retryDelayMs(attempts)).toISOString() };
        put.push({ identity: a.identity, srcUid: a.srcUid, flags: a.flags, failed: failure });
        noteRetry(failure.retryAt);
        report.refused.push({ identity: a.identity, code: r.code, reason: r.reason, attempts });
        log.warn("mirror.copy.refused", { code: r.code, reason: r.reason, attempts, srcUid: a.srcUid });
      }
    }
    // The batch's pairs are written while the lane's next batch is appended (one commit in flight per lane).
    waited("append");
    await lastCommit;
    waited("commit");
    // (An object: a promise returned from an async function would be awaited with it.)
    return { commit: inFlight(state.commit({ put, drop: drop.filter((id) => !pairs.has(id)), clearJournal: batch.map((a) => a.identity) })) };
  };

  /** One backup connection taking the next batch until none is left (or time is up, or another lane failed). */
  const lane = async (target: MirrorTargetPort) => {
    let lastCommit: Promise<void> | undefined;
    try {
      while (!failed && taken < stopAt) {
        const b = taken++;
        prepare(b);
        // Time up: what is already fetched and journalled is appended, nothing more is taken.
        if (b + 1 < stopAt && input.timeUp?.()) stopAt = Math.max(b, ...prepared.keys()) + 1;
        // Production's FETCHes run one after the other on its one connection: as many batches
        // ahead as there are lanes keep it busy while they append.
        for (let k = 1; k <= wanted; k++) prepare(b + k);
        lastCommit = (await copyBatch(target, b, lastCommit)).commit;
        commits.push(lastCommit);
      }
    } catch (e) {
      failed = true;
      throw e;
    }
  };
  // The extra lanes are opened while the first batch is appended, and only when there is more
  // than one batch: a run with a few copies costs no second login.
  const lanes: Array<Promise<void>> = [lane(target)];
  for (let i = 1; i < wanted && input.appendLane; i++) {
    const open = input.appendLane;
    lanes.push((async () => {
      let extra: MirrorTargetPort | undefined;
      try { extra = await open(i); } catch (e) { log.warn("mirror.lane.unavailable", { lane: i, error: ensureConnectorError(e) }); }
      if (extra && !failed && taken < stopAt) await lane(extra);
    })());
  }
  const settled = await Promise.allSettled(lanes);
  // Nothing of this run may still be writing when it reports its success or failure (the lease ends then).
  const t = performance.now();
  const written = await Promise.allSettled([...commits, ...[...prepared.values()].flatMap((p) => [p.bodies, p.journal])]);
  report.waitedMs.commit += performance.now() - t;
  const failure = [...settled, ...written].find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failure) throw failure.reason;
  report.backlog = plan.waiting + report.refused.length;
  if (stopAt < batches.length) {
    report.unfinished = batches.slice(stopAt).reduce((n, b) => n + b.length, 0);
    report.backlog += report.unfinished;
    log.info("mirror.sync.paused", { unfinished: report.unfinished, copied: report.copied });
    return report;
  }
  await state.saveCursors({
    source: changes.cursor,
    // The backup's HIGHESTMODSEQ moved with our own writes; only its UIDVALIDITY matters here.
    target: tgtCursor,
    ...(retryAt !== undefined ? { retryAt: new Date(retryAt).toISOString() } : {}),
    lastRunAt: now().toISOString(),
    backlog: report.backlog,
  });
  return report;
}

/** A run that cannot go on (for callers that want the typed error of a missing backup). */
export function noBackup(endpointId: string): ConnectorError {
  return new ConnectorError("CONFIG_INVALID", `endpoint ${endpointId} names no backup endpoint (endpoint.backup.endpointId)`, { endpoint: endpointId, transient: false });
}
