/**
 * One writer per mailbox (DESIGN.md section 3): a sync request runs under the mailbox lease;
 * requests that arrive while another worker holds it coalesce into one follow-up run.
 *
 * Order is important, and closes the lost-wakeup race:
 *  - a waiter that finds the lease held first marks "run requested", then tries the lease
 *    once more (the holder may have released it in between) and otherwise leaves;
 *  - the holder releases the lease first, then takes the "run requested" mark and, if it was
 *    set, enqueues exactly one follow-up run.
 */
import { ConnectorError, isConnectorError } from "../errors.js";
import type { Logger } from "../log.js";

export interface LeaseHandle {
  key: string;
  /** Epoch ms until which the lease is ours (the state store's clock is ours: it computed it). */
  expiresAt: number;
}

/**
 * Handed to the run: the executor's ports call `assertHeld()` before every write
 * (src/sync/writeGate.ts). A run whose lease renewal failed, or whose lease is about to expire
 * because renewals hang (storage paused), stops before its next write: another worker may
 * already own the mailbox, and two writers would duplicate copies or undo each other's work.
 */
export interface LeaseGuard {
  assertHeld(): void;
  /**
   * True once the run's time budget is spent: a long run (a first sync of thousands of
   * messages) then stops taking new work and hands the rest to a follow-up run, instead of
   * being cut off by the hard run deadline with its work still going and its lease released.
   */
  timeUp(): boolean;
}

export interface MailboxRunDeps<L extends LeaseHandle> {
  acquireLease(linkId: string): Promise<L>;
  renewLease(lease: L): Promise<L>;
  releaseLease(lease: L): Promise<void>;
  /** `full`: the coalesced request wanted a full comparison; the follow-up keeps that. */
  requestRun(linkId: string, full: boolean): Promise<void>;
  /** Clears the mark: "none", or the kind of run requested since the last take. */
  takeRunRequest(linkId: string): Promise<"none" | "run" | "full">;
  enqueueFollowUp(linkId: string, full: boolean): Promise<void>;
  leaseSeconds: number;
  log: Logger;
}

export type RunOutcome<T> = { status: "ran"; result: T; followUp: boolean } | { status: "coalesced" };

export async function runUnderLease<L extends LeaseHandle, T>(linkId: string, deps: MailboxRunDeps<L>, work: (lease: LeaseGuard) => Promise<T>, options: { full?: boolean; budgetMs?: number } = {}): Promise<RunOutcome<T>> {
  let lease = await tryAcquire(linkId, deps);
  if (!lease) {
    await deps.requestRun(linkId, options.full ?? false);
    lease = await tryAcquire(linkId, deps);
    if (!lease) {
      deps.log.debug("mailbox.run.coalesced", { linkId });
      return { status: "coalesced" };
    }
  }
  // Keep the lease alive through long runs (a backfill can outlast one lease period), renewing
  // every third of it. Once a renewal fails, or the lease gets within one renewal period of
  // its expiry without one succeeding, the lease counts as lost for the rest of the run.
  let current = lease;
  let renewing = Promise.resolve();
  let lost: string | undefined;
  const periodMs = Math.max(1000, (deps.leaseSeconds * 1000) / 3);
  const loseLease = (why: string, error?: unknown) => {
    if (lost) return;
    lost = why;
    deps.log.warn("mailbox.lease.lost", { linkId, why, error });
  };
  let renewalInFlight = false; // a hanging renewal is not overtaken by a second one with the same ETag
  const timer = setInterval(() => {
    if (lost || renewalInFlight) return;
    renewalInFlight = true;
    renewing = deps.renewLease(current).then((l) => { if (!lost) current = l; }, (e) => loseLease("renewal failed", e)).finally(() => { renewalInFlight = false; });
  }, periodMs);
  const budgetEnds = Date.now() + (options.budgetMs ?? Infinity);
  // Once the run is over (its work settled, or abandoned at its deadline: src/timeouts.ts does
  // not stop the promise) the lease is released; work still going after that must not write.
  let over = false;
  const guard: LeaseGuard = {
    timeUp: () => Date.now() > budgetEnds,
    assertHeld() {
      if (over) throw new ConnectorError("LEASE_LOST", `the run on ${linkId} is over (its lease is released): stopped before the next write`, { mailboxId: linkId, retryAfterSeconds: 1 });
      if (!lost && Date.now() > current.expiresAt - periodMs) loseLease("not renewed in time");
      if (lost) throw new ConnectorError("LEASE_LOST", `the lease on ${linkId} was lost (${lost}): stopped before the next write`, { mailboxId: linkId, retryAfterSeconds: 1 });
    },
  };
  let result: T;
  try {
    result = await work(guard);
  } finally {
    over = true;
    clearInterval(timer);
    await renewing;
    await deps.releaseLease(current).catch((e) => deps.log.warn("mailbox.lease.releaseFailed", { linkId, error: e }));
  }
  const followUp = await deps.takeRunRequest(linkId);
  if (followUp !== "none") await deps.enqueueFollowUp(linkId, followUp === "full");
  return { status: "ran", result, followUp: followUp !== "none" };
}

async function tryAcquire<L extends LeaseHandle>(linkId: string, deps: MailboxRunDeps<L>): Promise<L | undefined> {
  try {
    return await deps.acquireLease(linkId);
  } catch (e) {
    if (isConnectorError(e, "LEASE_HELD")) return undefined;
    throw e;
  }
}
