/**
 * A run that loses its mailbox lease stops writing before its next write
 * (src/sync/mailboxRun.ts LeaseGuard, checked before every write by src/sync/writeGate.ts),
 * through the real trigger path: the link's first run (queue -> syncWorker) copies a backlog
 * of voice messages while another worker takes the lease over:
 *  - stolen: a worker whose clock runs ahead sees the lease expired and takes it; our next
 *    renewal fails (ETag mismatch);
 *  - storage paused: Azurite stops answering (SIGSTOP) for longer than the lease, so no
 *    renewal succeeds in time; when it is back another worker takes the expired lease at once.
 * The run fails with LEASE_LOST, makes no further copy while the other worker holds the lease,
 * and once that worker is gone the next run completes: every message exactly once.
 *
 * Break used: the lease is never checked before a write (leaseHooks' `before` does nothing; a
 * failed renewal then only logs) -> both tests fail: the loss is logged but the run keeps
 * writing and never fails with LEASE_LOST ("expected false to be true" in
 * stoppedBeforeNextWrite).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { enqueueSync } from "../../src/app/syncQueue.js";
import type { Lease } from "../../src/state/stateStore.js";
import { SYNC_KEY_PROP } from "../../src/graph/voicemail.js";

// Large enough that the first run spans several lease periods even when copies are quick (MP3
// copies since #15 need no upload session).
const BACKLOG = 40;
const LEASE_SECONDS = 5;
let w: World;
let lines: Array<Record<string, unknown>>;

beforeAll(async () => {
  // Timers off: only the link's own runs touch the mailboxes. Each Graph request takes 300 ms,
  // so the backlog takes several lease periods to copy.
  w = await startWorld({ users: ["4901", "4902"], timers: false, sim: { latencyMs: 300 }, env: { UMC_LEASE_SECONDS: String(LEASE_SECONDS) } });
  lines = (w.log as unknown as { lines: Array<Record<string, unknown>> }).lines;
  for (const mailbox of ["4901", "4902"]) for (let i = 0; i < BACKLOG; i++) await w.dc.lda(mailbox, avayaVoiceMessage({ id: `${mailbox}-${i}` }));
}, 120_000);
afterAll(async () => { await w?.stop(); });

const copies = (userId: string) => w.sim.outlook(userId).messages("inbox");
const failedWith = (linkId: string, code: string) => lines.some((l) => l.event === "voicemail.sync.failed" && l.linkId === linkId && JSON.stringify(l.error).includes(code));
const leaseLost = (linkId: string) => lines.find((l) => l.event === "mailbox.lease.lost" && l.linkId === linkId);
/** Actions the executor runs at once: at most this many writes were already under way when the loss was seen. */
const PARALLEL = 8;

function exactlyOnce(userId: string) {
  const keys = copies(userId).map((m) => m.ext.get(SYNC_KEY_PROP.toLowerCase())?.value);
  expect(new Set(keys).size).toBe(keys.length);
  expect(keys).toHaveLength(BACKLOG);
}

/**
 * Waits for the loss to be seen and for the run to end; the copies made after the loss are at
 * most the creates already in flight (no new one started).
 */
async function stoppedBeforeNextWrite(linkId: string, userId: string) {
  await expect.poll(() => leaseLost(linkId), { timeout: 30_000, interval: 20 }).toBeDefined();
  const atLoss = copies(userId).length;
  await expect.poll(() => failedWith(linkId, "LEASE_LOST"), { timeout: 30_000 }).toBe(true);
  // The run has ended: every action it had in flight settled before it reported the failure.
  const atFailure = copies(userId).length;
  expect(atFailure - atLoss).toBeLessThanOrEqual(PARALLEL);
  expect(atFailure).toBeLessThan(BACKLOG);
  return leaseLost(linkId)!;
}

/** The other worker leaves; a new run (as the coalesced follow-up would) finishes the backlog exactly once. */
async function finish(linkId: string, userId: string, lease: Lease) {
  await w.deps.state.releaseLease(lease);
  await enqueueSync(w.deps.syncQueue, { linkId, reason: "follow-up", at: Date.now() });
  await expect.poll(() => copies(userId).length, { timeout: 60_000 }).toBe(BACKLOG);
  exactlyOnce(userId);
}

describe("lease lost mid-run", () => {
  it("stolen lease: the renewal fails and the run stops before its next write", async () => {
    const { linkId, userId } = await w.link("4901", "lena@contoso.test");
    await expect.poll(() => copies(userId).length, { timeout: 30_000 }).toBeGreaterThan(0);
    const stolen = await w.takeLeaseOver(`voicemail:${linkId}`);
    expect((await stoppedBeforeNextWrite(linkId, userId)).why).toBe("renewal failed");
    await finish(linkId, userId, stolen);
  }, 120_000);

  it("storage paused past the lease: the run stops before its next write once storage is back", async () => {
    const { linkId, userId } = await w.link("4902", "paul@contoso.test");
    await expect.poll(() => copies(userId).length, { timeout: 30_000 }).toBeGreaterThan(0);
    w.az.pause();
    try {
      await new Promise((r) => setTimeout(r, (LEASE_SECONDS + 2) * 1000)); // longer than the lease: it expires unrenewed
    } finally {
      w.az.resume();
    }
    const taken = await w.takeLeaseOver(`voicemail:${linkId}`); // another worker takes the expired lease at once
    await stoppedBeforeNextWrite(linkId, userId);
    await finish(linkId, userId, taken);
  }, 120_000);
});
