/**
 * IDLE watches and the store's connection budget (#16 point 4): watches hold their connection
 * for the whole hold, so they may only take the budget's watch share (src/app/connectionBudget.ts
 * `watchLimits`); the rest stays for sync runs. Here the store allows 3 connections from our
 * address: one mailbox is watched, the other two are left to the poll (counted as over budget),
 * and runs for all three still get connections and copy their deposits while the watch holds.
 *
 * Break that turns this red: `watchLimits` returning the whole budget. The three watches then
 * take all 3 slots, every run is put off (IMAP_CONNECTION_LIMIT) and no deposit arrives while
 * the watches hold.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, type World } from "./world.js";
import { watchStoresEvenFunction } from "../../functions/timers.js";
import { enqueueSync } from "../../src/app/syncQueue.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";

const USERS = ["7701", "7702", "7703"];
let w: World;
const userIds: Record<string, string> = {};
type Line = Record<string, unknown>;
const events = (name: string) => ((w.log as { lines?: Line[] }).lines ?? []).filter((l) => l.event === name);
const inbox = (u: string) => w.sim.outlook(userIds[u]!).messages("inbox").length;
const fire = (f: typeof watchStoresEvenFunction) => (f.handler as (t: unknown, c: unknown) => Promise<void>)({}, {});
/** Dovecot's connections (all users) now. */
const connections = async () => (await w.dc.doveadm("who")).split("\n").slice(1).reduce((n, line) => n + (Number(line.trim().split(/\s+/)[1]) || 0), 0);

beforeAll(async () => {
  w = await startWorld({ users: USERS, timers: false, storePush: false, endpoint: { notify: "idle", connectionBudget: { perUser: 4, perAddress: 3 } }, env: { UMC_WATCH_HOLD_SECONDS: "15" } });
  for (const u of USERS) userIds[u] = (await w.link(u, `budget${u}@contoso.test`)).userId;
  await w.queueDrained(60_000);
}, 90_000);
afterAll(async () => { await w?.stop(); });

describe("IDLE watches within the store's connection budget", () => {
  it("watches take only their share; runs still get connections while the watches hold", async () => {
    const watcher = fire(watchStoresEvenFunction);
    // Every mailbox has had its try: watched, or refused its share and left to the poll.
    await expect.poll(async () => events("watcher.mailbox.failed").length + (await connections()), { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
    for (const u of USERS) await w.dc.lda(u, avayaVoiceMessage({ id: `budget-${u}` }));
    for (const u of USERS) await enqueueSync(w.deps.syncQueue, { linkId: `L-${u}`, reason: "admin", at: Date.now() });
    let most = 0;
    await expect.poll(async () => { most = Math.max(most, await connections()); return USERS.map(inbox); }, { timeout: 10_000, interval: 200 }).toEqual([1, 1, 1]);
    await watcher;
    expect(events("watcher.done").at(-1)).toMatchObject({ mailboxes: 1, overBudget: 2 });
    expect(most).toBeLessThanOrEqual(3);
  }, 60_000);
});
