/**
 * A run's time budget (UMC_RUN_BUDGET_SECONDS, src/sync/mailboxRun.ts LeaseGuard.timeUp): a
 * backlog larger than one run can carry in its time (a first sync of thousands of messages) is
 * carried by a chain of runs, each stopping cleanly after its budget and handing the rest to a
 * follow-up, instead of one run cut off by the hard deadline with its work still going. Here the
 * budget is 1 s and Graph answers after 40 ms, so 40 deposits take several runs; every timer is
 * off, so only the follow-ups can finish the backlog.
 *
 * Breaks seen red:
 * - voicemail.ts not requesting the follow-up run -> the backlog stops after the first run;
 * - the executor ignoring timeUp -> no run stops early ("continues" never logged).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SAFETY_NET_TIMERS, startWorld, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { SYNC_KEY_PROP } from "../../src/graph/voicemail.js";

let w: World;
let userId = "";
const N = 40;
type Line = Record<string, unknown>;
const lines = () => ((w.log as { lines?: Line[] }).lines ?? []);

beforeAll(async () => {
  w = await startWorld({ users: ["5901"], disabledFunctions: SAFETY_NET_TIMERS, sim: { latencyMs: 40 }, env: { UMC_RUN_BUDGET_SECONDS: "1" } });
  ({ userId } = await w.link("5901", "backlog@contoso.test"));
  await w.queueDrained(30_000);
}, 60_000);
afterAll(async () => { await w?.stop(); });

describe("run time budget", () => {
  it("a backlog longer than one run's budget is carried by follow-up runs, each copy once", async () => {
    // Delivered while the link is paused, so one run meets the whole backlog.
    await w.deps.state.modifyLink("L-5901", (l) => ({ ...l, state: "paused" }));
    for (let i = 0; i < N; i++) await w.dc.lda("5901", avayaVoiceMessage({ id: `budget-${i}`, seconds: 4 }));
    await w.deps.state.modifyLink("L-5901", (l) => ({ ...l, state: "enabled" }));
    await w.dc.lda("5901", avayaVoiceMessage({ id: `budget-${N}`, seconds: 4 })); // its push starts the first run
    const inbox = () => w.sim.outlook(userId).messages("inbox");
    await expect.poll(() => inbox().length, { timeout: 60_000, interval: 250 }).toBe(N + 1);
    await w.queueDrained();
    const keys = inbox().map((m) => m.ext.get(SYNC_KEY_PROP.toLowerCase())?.value);
    expect(new Set(keys).size).toBe(N + 1);
    const continued = lines().filter((l) => l.event === "voicemail.sync.continues" && l.linkId === "L-5901");
    expect(continued.length).toBeGreaterThanOrEqual(1);
    expect(lines().filter((l) => /did not finish within/.test(JSON.stringify(l.error ?? "")))).toEqual([]);
    expect((await w.deps.state.getLink("L-5901"))!.lastSyncAt).toBeTruthy();
  }, 90_000);
});
