/**
 * A mailbox whose 10-minute Graph budget is spent: the run stops with GRAPH_THROTTLED and is
 * requeued for when the budget is back, instead of a function sleeping for minutes; copies
 * made before stay, none is duplicated.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";

let w: World;
beforeAll(async () => { w = await startWorld({ users: ["8001"], sim: { requestBudget: 25 }, timers: false }); }, 60_000);
afterAll(async () => { await w?.stop(); });

describe("Graph budget spent", () => {
  it("requeues the run with the Retry-After delay and keeps what was copied", async () => {
    const c = await w.imap("8001");
    for (let i = 0; i < 40; i++) await c.append("INBOX", avayaVoiceMessage({ id: `thr-${i}` }));
    await c.logout();
    const { userId } = await w.link("8001", "thr@contoso.test");
    const lines = () => ((w.log as { lines?: Array<Record<string, unknown>> }).lines ?? []);
    await expect.poll(() => lines().find((l) => l.event === "sync.throttled"), { timeout: 20_000 }).toBeTruthy();
    const throttled = lines().find((l) => l.event === "sync.throttled")!;
    expect(Number(throttled.retryAfterSeconds)).toBeGreaterThan(60);
    const copies = w.sim.outlook(userId).messages("inbox");
    expect(copies.length).toBeGreaterThan(0);
    expect(copies.length).toBeLessThan(40);
    const keys = copies.map((m) => [...m.ext.values()].find((p) => /UmcSyncKey/.test(p.id))?.value);
    expect(new Set(keys).size).toBe(keys.length);
    // Shown to the administrator.
    await expect.poll(async () => (await w.deps.state.getLink("L-8001"))?.throttled?.count, { timeout: 5_000 }).toBeGreaterThanOrEqual(1);
    // The requeued request waits, invisible, in the queue.
    const props = await w.deps.syncQueue.getProperties();
    expect(props.approximateMessagesCount).toBeGreaterThanOrEqual(1);
  });
});
