/**
 * Push without a hook: Dovecot without the Lua push hook, the endpoint set to notify "idle",
 * timers off (no poll). The watch timer's function holds IDLE for both mailboxes; a deposit
 * reaches Outlook within seconds, a watcher hands its shard to the next without double watch
 * and without losing what arrived in between, and after a store restart the watches come back
 * (jittered) and keep working.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, type World } from "./world.js";
import { watchStoresEvenFunction, watchStoresOddFunction } from "../../functions/timers.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";

const USERS = ["7401", "7402"];
let w: World;
const userIds: Record<string, string> = {};
type Line = Record<string, unknown>;
const lines = () => ((w.log as { lines?: Line[] }).lines ?? []);
const events = (name: string) => lines().filter((l) => l.event === name);
const inbox = (u: string) => w.sim.outlook(userIds[u]!).messages("inbox").length;
const fire = (f: typeof watchStoresEvenFunction) => (f.handler as (t: unknown, c: unknown) => Promise<void>)({}, {});
/** Dovecot's connections per user now. */
async function held(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await w.dc.doveadm("who")).split("\n").slice(1)) {
    const [user, n] = line.trim().split(/\s+/);
    if (user && n && /^\d+$/.test(n)) out.set(user, Number(n));
  }
  return out;
}

beforeAll(async () => {
  w = await startWorld({ users: USERS, timers: false, storePush: false, endpoint: { notify: "idle" }, env: { UMC_WATCH_HOLD_SECONDS: "12" } });
  for (const u of USERS) userIds[u] = (await w.link(u, `idle${u}@contoso.test`)).userId;
  for (let i = 0; (await w.deps.state.listLinks({})).filter((l) => l.lastSyncAt).length < USERS.length; i++) {
    if (i > 300) throw new Error("first runs did not finish");
    await new Promise((r) => setTimeout(r, 100));
  }
}, 90_000);
afterAll(async () => { await w?.stop(); });

describe("IDLE watchers", () => {
  it("a deposit reaches Outlook through IDLE, a watcher hands over without gap or double watch, and a store restart is survived", async () => {
    const first = fire(watchStoresEvenFunction);
    await expect.poll(async () => { const h = await held(); return USERS.every((u) => (h.get(u) ?? 0) >= 1); }, { timeout: 15_000 }).toBe(true);
    const t0 = Date.now();
    await w.dc.lda("7401", avayaVoiceMessage({ id: "idle-1" }));
    await expect.poll(() => inbox("7401"), { timeout: 10_000, message: JSON.stringify(lines().filter((l) => /^(watcher|sync|queue|credential|budget)/.test(String(l.event))).slice(-20)) }).toBe(1);
    const latencyMs = Date.now() - t0;
    expect(events("watcher.change").some((l) => l.linkId === "L-7401" && l.why === "exists")).toBe(true);

    // The next watcher starts while the first still holds the shard: it waits, then takes over.
    await new Promise((r) => setTimeout(r, Math.max(0, 9000 - (Date.now() - t0))));
    const second = fire(watchStoresOddFunction);
    await first;
    // Delivered in the handover: while nobody or the next watcher is connecting.
    await w.dc.lda("7402", avayaVoiceMessage({ id: "idle-2" }));
    await expect.poll(() => inbox("7402"), { timeout: 15_000 }).toBe(1);
    const taken = events("watcher.shard.taken");
    const released = events("watcher.shard.released");
    expect(taken).toHaveLength(2);
    expect(Date.parse(String(taken[1]!.time))).toBeGreaterThanOrEqual(Date.parse(String(released[0]!.time)));

    // The store restarts: the watches come back and IDLE works again.
    await w.dc.restart();
    await expect.poll(async () => { const h = await held(); return USERS.every((u) => (h.get(u) ?? 0) >= 1); }, { timeout: 15_000 }).toBe(true);
    await w.dc.lda("7401", avayaVoiceMessage({ id: "idle-3" }));
    await expect.poll(() => inbox("7401"), { timeout: 10_000 }).toBe(2);
    await second;
    expect(events("watcher.done").at(-1)).toMatchObject({ shards: 1, mailboxes: 2 });
    expect((events("watcher.done").at(-1)!.reconnects as number)).toBeGreaterThanOrEqual(2);
    // Watches end with their watcher: nothing is left connected.
    await expect.poll(async () => [...(await held()).values()].reduce((a, b) => a + b, 0), { timeout: 10_000 }).toBe(0);
    console.log(`deposit -> Outlook through IDLE: ${latencyMs} ms`);
  }, 120_000);
});
