/**
 * One run of one kind (voicemail, contacts, calendar, UC location) for one mailbox link, under
 * that kind's lease: kinds run independently (a long contacts backfill never delays a voice
 * message), while two runs of one kind never overlap; bursts coalesce into one follow-up
 * (src/sync/mailboxRun.ts).
 */
import crypto from "node:crypto";
import type { Logger } from "../log.js";
import { runUnderLease, type LeaseGuard } from "../sync/mailboxRun.js";
import type { MailboxLink } from "../state/stateStore.js";
import { SYNC_RUN_DEADLINE_MS, withDeadline } from "../timeouts.js";
import type { Deps } from "./deps.js";
import { enqueueSync, type SyncKind, type SyncRequest } from "./syncQueue.js";
import { assertWithinTenant } from "../security/tenantBoundary.js";
import { ensureConnectorError } from "../errors.js";

export type LinkRunResult<T> = { status: "ran"; report: T } | { status: "coalesced" } | { status: "skipped"; reason: string };

/** Requests that compare both sides in full (cursors ignored). For subscription upkeep: lifecycle
 *  requests, so one that coalesces with a running upkeep still gets its own pass (a follow-up
 *  "reconcile" that reauthorizes and checks every subscription of the link). */
export const isFullRun = (req: SyncRequest) => req.reason === "reconcile" || req.reason === "graph-missed" || req.reason === "graph-lifecycle"
  || (req.kind === "subscriptions" && (req.reason === "graph-reauthorize" || req.reason === "graph-resubscribe"));

export const runKeyOf = (linkId: string, kind: SyncKind) => (kind === "voicemail" ? linkId : `${kind}:${linkId}`);
/** What a run keeps of its hard deadline for the actions in flight when its budget is spent. */
const RUN_SETTLE_MS = 60_000;
/** A queued mark older than this no longer holds notifications back. */
export const QUEUED_MARK_SECONDS = 120;

/**
 * Enqueues a run for a change notification, unless one for the same link and kind is already
 * queued and has not started: Graph sends one notification per changed item, so a burst of
 * 5,000 contact changes becomes one queued run, not 5,000. The mark is cleared when the run
 * starts, before it reads any change, so a change notified after that gets a run of its own.
 */
export async function requestChangeRun(deps: Deps, req: SyncRequest): Promise<void> {
  const kind = req.kind ?? "voicemail";
  if (!(await deps.state.markQueued(runKeyOf(req.linkId, kind), QUEUED_MARK_SECONDS))) return;
  await enqueueSync(deps.syncQueue, req);
}

export async function runLinkUnderLease<T>(deps: Deps, req: SyncRequest, kind: SyncKind, work: (link: MailboxLink, log: Logger, lease: LeaseGuard) => Promise<T>): Promise<LinkRunResult<T>> {
  await deps.state.clearQueued(runKeyOf(req.linkId, kind));
  const link = await deps.state.getLink(req.linkId);
  if (!link) return { status: "skipped", reason: "unknown link" };
  if (link.state !== "enabled") return { status: "skipped", reason: `link is ${link.state}` };
  const log = deps.log.child({ linkId: link.linkId, tenantId: link.tenantId, reason: req.reason, ...(kind === "voicemail" ? {} : { kind }) });
  // Defence in depth: whatever wrote this link row, a run never opens another tenant's store.
  try {
    assertWithinTenant(await deps.directory({ endpointId: link.endpointId, profileId: link.profileId }), link);
  } catch (e) {
    const err = ensureConnectorError(e);
    if (err.code === "TENANT_BOUNDARY") {
      log.error("link.tenantBoundary.refused", { error: err });
      // Shown on the status page with an alert; items and cursors stay as they are.
      await deps.state.modifyLink(link.linkId, (l) => ({ ...l, lastError: { code: err.code, message: err.message, at: new Date().toISOString() } })).catch(() => undefined);
    }
    throw err;
  }
  // Voicemail keeps its original keys, so leases and marks survive an upgrade.
  const runKey = runKeyOf(link.linkId, kind);
  // One owner per run, not per process: two invocations in one worker must exclude each other too.
  const owner = `${deps.workerId}:${crypto.randomUUID()}`;
  const outcome = await runUnderLease(runKey, {
    acquireLease: () => deps.state.acquireLease(`${kind}:${link.linkId}`, owner, deps.config.sync.leaseSeconds),
    renewLease: (l) => deps.state.renewLease(l, deps.config.sync.leaseSeconds),
    releaseLease: (l) => deps.state.releaseLease(l),
    requestRun: (_, full) => deps.state.requestRun(runKey, full),
    takeRunRequest: () => deps.state.takeRunRequest(runKey),
    enqueueFollowUp: (_, full) => enqueueSync(deps.syncQueue, { linkId: link.linkId, ...(kind === "voicemail" ? {} : { kind }), reason: full ? "reconcile" : "follow-up", at: Date.now() }),
    leaseSeconds: deps.config.sync.leaseSeconds,
    log,
  }, (lease) => withDeadline(work(link, log, lease), SYNC_RUN_DEADLINE_MS, "INTERNAL", `${kind} run of ${link.linkId}`, { mailboxId: link.linkId }),
  { full: isFullRun(req), budgetMs: Math.min(deps.config.sync.runBudgetSeconds * 1000, SYNC_RUN_DEADLINE_MS - RUN_SETTLE_MS) });
  if (outcome.status === "coalesced") return outcome;
  return { status: "ran", report: outcome.result };
}
