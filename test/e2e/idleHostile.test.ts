/**
 * IDLE watchers against a store that misbehaves mid-IDLE (#16 "bad input"): one mailbox's IDLE
 * hangs (the store stops answering on that connection, TCP still up), one is dropped, one gets
 * bytes that are not IMAP, one behaves. Each bad watch is noticed (the hung one by the
 * endpoint's silenceTimeoutSeconds: a NOOP, then the drop), closed and re-opened after a
 * jittered wait; a mailbox never holds more than one connection (no leak), the well-behaved
 * watch is never disturbed (one login for the whole hold), and when the watcher's hold ends
 * nothing is left connected.
 *
 * Break that turns this red: not passing silenceTimeoutMs to imapflow (src/imap/endpoint.ts
 * `socketTimeout`): the hung watch then waits out imapflow's 5 minutes and is never re-opened
 * within the hold.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, TENANT, ENDPOINT, type World } from "./world.js";
import { startScriptedImap, type ScriptedImap } from "../harness/scriptedImap.js";
import { watchStoresEvenFunction } from "../../functions/timers.js";

const BEHAVIOUR = { "7601": "hang", "7602": "drop", "7603": "garbage", "7604": "ok" } as const;
const USERS = Object.keys(BEHAVIOUR) as Array<keyof typeof BEHAVIOUR>;
let w: World;
let store: ScriptedImap;
type Line = Record<string, unknown>;
const events = (name: string) => ((w.log as { lines?: Line[] }).lines ?? []).filter((l) => l.event === name);
const fire = (f: typeof watchStoresEvenFunction) => (f.handler as (t: unknown, c: unknown) => Promise<void>)({}, {});

beforeAll(async () => {
  store = await startScriptedImap({ idle: (u) => BEHAVIOUR[u as keyof typeof BEHAVIOUR] ?? "ok" });
  w = await startWorld({
    users: ["7600"], timers: false, storePush: false, env: { UMC_WATCH_HOLD_SECONDS: "14" },
    endpoint: { host: store.host, port: store.port, tls: "plaintext", auth: { mode: "user-password", password: "pw-scripted" }, notify: "idle", silenceTimeoutSeconds: 1 },
  });
  // Links only: their sync runs are not under test (the scripted store holds no messages).
  for (const u of USERS) await w.deps.state.createLink({ linkId: `L-${u}`, tenantId: TENANT, endpointId: ENDPOINT, voiceMailbox: u, userId: `user-${u}`, profileId: "default", state: "enabled" });
}, 90_000);
afterAll(async () => { await w?.stop(); await store?.stop(); });

describe("IDLE watchers against a store that misbehaves mid-IDLE", () => {
  it("a hung, dropped or garbled IDLE is re-opened with no leaked connection; the healthy watch is untouched", async () => {
    const most = new Map<string, number>();
    const sample = setInterval(() => { for (const u of USERS) most.set(u, Math.max(most.get(u) ?? 0, store.openFor(u))); }, 20);
    try {
      await fire(watchStoresEvenFunction); // holds its shard for UMC_WATCH_HOLD_SECONDS
    } finally { clearInterval(sample); }
    // Every bad watch failed and came back at least once within the hold.
    expect(Object.fromEntries(USERS.map((u) => [u, store.logins(u) >= 2]))).toEqual({ "7601": true, "7602": true, "7603": true, "7604": false });
    for (const u of USERS) expect(store.idles(u), `IDLE sent for ${u}`).toBeGreaterThanOrEqual(1);
    // Never two connections for one mailbox: a broken watch is closed before the next one opens.
    expect(Object.fromEntries(USERS.map((u) => [u, most.get(u)]))).toEqual({ "7601": 1, "7602": 1, "7603": 1, "7604": 1 });
    // The healthy watch kept its one connection for the whole hold (its IDLE was only renewed).
    expect(store.logins("7604")).toBe(1);
    const done = events("watcher.done").at(-1);
    expect(done).toMatchObject({ shards: 1, mailboxes: 4 });
    expect(done!.reconnects as number).toBeGreaterThanOrEqual(3);
    // The hold is over: every connection is closed (server side).
    await expect.poll(() => store.open(), { timeout: 5_000 }).toBe(0);
  }, 60_000);
});
