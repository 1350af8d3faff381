/**
 * The UC-location run writes only while it holds the link's lease, like every other write
 * (src/app/calendar.ts updateLocation: `lease.assertHeld()` before SETMETADATA and before the
 * signed callback). Through the real trigger path: a location message on the queue, the worker's
 * run acquires the location lease, then waits for the store's connection budget (another
 * instance holds the mailbox's only slot); meanwhile a worker whose clock runs ahead takes the
 * lease over, so our next renewal fails. When the slot comes back the run must not write: the
 * newer run owns the location now, and an old run putting back its value could undo it.
 *
 * Break used: the `lease.assertHeld()` before `store.setMetadata` in updateLocation removed ->
 * "a run that lost its lease ..." fails: the store's METADATA holds "Meeting" and the callback
 * was posted, where nothing may have been written.
 */
import fs from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, type World } from "./world.js";
import { ensureTestCerts } from "../harness/certs.js";
import { LOCATION_ENTRY } from "../../src/app/calendar.js";
import { enqueueSync } from "../../src/app/syncQueue.js";
import { storeAccessState } from "../../src/app/credentials.js";
import { userScope } from "../../src/app/connectionBudget.js";
import { openVoiceMailbox } from "../../src/imap/voiceMailbox.js";
import { TableClient } from "@azure/data-tables";
import { keyOf } from "../../src/state/tables.js";

const MAILBOX = "4931";
const LEASE_SECONDS = 5;
let w: World;
let linkId = "";
let userId = "";
let receiver: https.Server;
const callbacks: string[] = [];
const lines = () => (w.log as unknown as { lines: Array<Record<string, unknown>> }).lines;

beforeAll(async () => {
  const certs = ensureTestCerts();
  receiver = https.createServer({ key: fs.readFileSync(certs.serverKeyPath), cert: fs.readFileSync(certs.serverCertPath) }, (req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => { callbacks.push(body); res.writeHead(204).end(); });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  // Timers off: only the runs this test starts touch the mailbox.
  w = await startWorld({
    users: [MAILBOX], timers: false, env: { UMC_LEASE_SECONDS: String(LEASE_SECONDS) },
    profiles: [{ id: "cal", displayName: "Calendar", calendar: { enabled: true, pastDays: 1, futureDays: 14, changeLocation: { enabled: true, text: "Meeting" } } }],
    endpoint: { vendor: "dovecot", connectionBudget: { perUser: 1, perAddress: 4 }, locationCallbackUrl: `https://127.0.0.1:${(receiver.address() as AddressInfo).port}/uc-location` },
  });
  ({ linkId, userId } = await w.link(MAILBOX, "lara@contoso.test", "cal"));
  await w.queueDrained(); // the link's first runs (calendar included) are done
}, 90_000);
afterAll(async () => { await w?.stop(); receiver?.close(); });

async function storedLocation(): Promise<string | null> {
  const s = await openVoiceMailbox((await w.deps.directory()).endpoint("voice-1"), MAILBOX, { folder: "INBOX", removal: { mode: "expunge" } });
  try { return await s.getMetadata(LOCATION_ENTRY); } finally { await s.close(); }
}

/** The owner of a lease row now, or undefined when nobody holds it. */
async function leaseOwner(key: string): Promise<string | undefined> {
  const t = TableClient.fromConnectionString(w.az.connectionString, `${w.deps.config.storage.tablePrefix}leases`, { allowInsecureConnection: true });
  try { return String((await t.getEntity("lease", keyOf(key))).owner); } catch { return undefined; }
}

describe("UC location and the lease", () => {
  it("a run that lost its lease while waiting for the store writes neither METADATA nor the callback", async () => {
    // A busy meeting now, ending in 12 s: the calendar run's location run sets "Meeting" and
    // schedules the next location run for the meeting's end (a delayed queue message).
    const iso = (t: number) => new Date(t).toISOString().slice(0, 19);
    const end = Math.floor((Date.now() + 12_000) / 1000) * 1000;
    w.sim.calendar(userId).add({ subject: "Board call", showAs: "busy", start: { dateTime: iso(Date.now() - 60_000), timeZone: "UTC" }, end: { dateTime: iso(end), timeZone: "UTC" } });
    await enqueueSync(w.deps.syncQueue, { linkId, kind: "calendar", reason: "poll", at: Date.now() });
    await expect.poll(storedLocation, { timeout: 10_000, interval: 200 }).toBe("Meeting");
    await expect.poll(() => callbacks.length, { timeout: 5_000 }).toBe(1);
    expect(Date.now()).toBeLessThan(end - 2000); // the scheduled run has not started yet

    // Another instance holds the mailbox's only connection slot when the scheduled run starts.
    const access = storeAccessState(w.deps);
    let slot: Awaited<ReturnType<typeof access.takeSlot>>;
    await expect.poll(async () => (slot = await access.takeSlot(userScope("voice-1", MAILBOX), 1, "other-instance", 60)), { timeout: 5_000, interval: 100 }).toBeDefined();
    // The run holds the location lease and waits for the budget (BUDGET_WAIT_MS, 10 s).
    await expect.poll(() => leaseOwner(`location:${linkId}`), { timeout: 20_000, interval: 50 }).toMatch(new RegExp(`^${w.deps.workerId}:`));
    const stolen = await w.takeLeaseOver(`location:${linkId}`);
    await new Promise((r) => setTimeout(r, (LEASE_SECONDS * 1000) / 2)); // a renewal comes and fails
    await access.releaseSlot(slot!);
    const ended = () => lines().filter((l) => l.linkId === linkId && l.kind === "location" && /location\.|lease/.test(String(l.event))).map((l) => `${l.event} ${JSON.stringify(l.error ?? {}).slice(0, 120)}`);
    await expect.poll(() => ended().find((e) => e.startsWith("location.failed")), { timeout: 15_000 }).toMatch(/LEASE_LOST/);
    expect(await storedLocation()).toBe("Meeting"); // not cleared by the run that lost its lease
    expect(callbacks).toHaveLength(1);

    // Once the other worker is gone, the next location run clears it.
    await w.deps.state.releaseLease(stolen);
    await enqueueSync(w.deps.syncQueue, { linkId, kind: "location", reason: "scheduled", at: Date.now() });
    await expect.poll(storedLocation, { timeout: 15_000 }).toBe(null);
    await expect.poll(() => callbacks.length, { timeout: 5_000 }).toBe(2); // posted right after the METADATA
  }, 90_000);
});
