/**
 * The sync worker's message handling: one queue message, one run of one kind for one link.
 * Graph's long throttling waits requeue the run for when the budget is back, rather than
 * failing it; problems that need an administrator (recorded on the link) are not retried;
 * other transient failures are rethrown so the host retries the message and finally parks it
 * in the poison queue.
 */
import { isConnectorError } from "../errors.js";
import { runCalendarRequest, runLocationRequest } from "./calendar.js";
import { runContactsRequest } from "./contacts.js";
import type { Deps } from "./deps.js";
import { enqueueSync, type SyncRequest } from "./syncQueue.js";
import { runSyncRequest } from "./voicemail.js";
import { runSubscriptionRequest } from "./subscriptions.js";
import { recordDeferred, traceSyncRun } from "../telemetry.js";
import { noteRun } from "./runNotes.js";
import { runScheduleShard } from "./schedule.js";
import { runMailRequest } from "./mail.js";
import { runMirrorRequest } from "./mirror.js";

/** Longest delay a throttled run is put off by (Storage queues allow up to 7 days). */
const MAX_REQUEUE_SECONDS = 15 * 60;
/** A voice store that is full or away, or a storage or Graph outage, is retried after 2, 4,
 *  8 ... 256 s (about 8 minutes in all): the host's own retries (5 within a minute) would give
 *  up before a restart is over and fill the poison queue with runs that only needed to wait. */
const OUTAGE_RETRIES = 8;
const OUTAGES: readonly string[] = ["IMAP_CONNECTION_LIMIT", "IMAP_UNAVAILABLE", "STATE_UNAVAILABLE", "GRAPH_UNAVAILABLE"];

export async function runRequest(deps: Deps, req: SyncRequest) {
  switch (req.kind ?? "voicemail") {
    case "voicemail": return runSyncRequest(deps, req);
    case "contacts": return runContactsRequest(deps, req);
    case "calendar": return runCalendarRequest(deps, req);
    case "location": return runLocationRequest(deps, req);
    case "subscriptions": return runSubscriptionRequest(deps, req);
    case "schedule": return runScheduleShard(deps, req);
    case "mail": return runMailRequest(deps, req);
    case "mirror": return runMirrorRequest(deps, req);
  }
}

/** Runs this process made, per "<kind>|<linkId>" (benchmarks and tests read it: runs per change). */
export const runsMade = new Map<string, number>();
/** Queue messages this process handled and their time (the cost model's executions and GB-s). */
export const workerStats = { messages: 0, ms: 0 };

export async function handleSyncMessage(deps: Deps, req: SyncRequest): Promise<void> {
  const kind = req.kind ?? "voicemail";
  const started = Date.now();
  const startedMs = performance.now();
  workerStats.messages++;
  try {
    const result = await traceSyncRun({ kind, linkId: req.linkId, reason: req.reason, at: req.at }, () => runRequest(deps, req));
    if (result.status === "ran") runsMade.set(`${kind}|${req.linkId}`, (runsMade.get(`${kind}|${req.linkId}`) ?? 0) + 1);
    await noteRun(deps, req, kind, started, { result });
  } catch (e) {
    await noteRun(deps, req, kind, started, { error: e });
    if (isConnectorError(e, "GRAPH_THROTTLED")) {
      const delay = Math.min(MAX_REQUEUE_SECONDS, Math.max(1, e.retryAfterSeconds ?? 60));
      deps.log.warn("sync.throttled", { linkId: req.linkId, kind, retryAfterSeconds: delay });
      recordDeferred(kind, e.code);
      await enqueueSync(deps.syncQueue, { ...req, reason: req.reason === "admin" ? "admin" : "follow-up" }, delay);
      // Shown on the status page ("throttling seen"); a lost count is no reason to fail the message.
      await deps.state.modifyLink(req.linkId, (l) => ({ ...l, throttled: { count: (l.throttled?.count ?? 0) + 1, lastAt: new Date().toISOString() } })).catch(() => undefined);
      return;
    }
    if (isConnectorError(e) && OUTAGES.includes(e.code)) {
      const attempt = (req.attempt ?? 0) + 1;
      if (attempt > OUTAGE_RETRIES) throw e; // the host's retries, then the poison queue; the timers go on
      const delay = 2 ** attempt;
      deps.log.warn("sync.outage", { linkId: req.linkId, kind, code: e.code, attempt, retryInSeconds: delay });
      recordDeferred(kind, e.code);
      // Storage may be the thing that is down: if the requeue fails, the host retries the original.
      await enqueueSync(deps.syncQueue, { ...req, attempt }, delay).catch(() => { throw e; });
      return;
    }
    if (isConnectorError(e) && !e.transient) return; // visible on the link; retrying cannot help
    throw e;
  } finally {
    workerStats.ms += performance.now() - startedMs;
  }
}
