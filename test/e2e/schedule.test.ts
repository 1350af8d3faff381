/**
 * What the timers enqueue: poll skips kinds that ran within the last minute (their run made the
 * check), fast read only mailboxes with unread voicemail that did not just run, reconcile
 * everything the profile syncs (and checks the link's subscriptions). And how they scale out: a
 * timer enqueues one message per shard and lists no link; each shard lists only its links.
 * Break seen red: listLinks ignoring its `buckets` range -> "fans out by shard ..." (every shard
 * listed all 4 links).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, type World } from "./world.js";
import { enqueueLinks, fanOutSchedule, runScheduleShard, shardBuckets } from "../../src/app/schedule.js";
import { linkBucket } from "../../src/state/links.js";
import type { SyncRequest } from "../../src/app/syncQueue.js";
import { runKeyOf } from "../../src/app/linkRun.js";

let w: World;
const ago = (s: number) => new Date(Date.now() - s * 1000).toISOString();

async function drain(): Promise<SyncRequest[]> {
  const out: SyncRequest[] = [];
  for (;;) {
    const r = await w.deps.syncQueue.receiveMessages({ numberOfMessages: 32 });
    if (!r.receivedMessageItems.length) return out;
    for (const m of r.receivedMessageItems) {
      out.push(JSON.parse(Buffer.from(m.messageText, "base64").toString("utf8")) as SyncRequest);
      await w.deps.syncQueue.deleteMessage(m.messageId, m.popReceipt);
    }
  }
}
const runs = (reqs: SyncRequest[]) => reqs.map((r) => `${r.linkId} ${r.kind ?? "voicemail"}`).sort();

beforeAll(async () => {
  w = await startWorld({ users: ["4990", "4991", "4992", "4993"], timers: false, queueWorkers: false, quiet: true, fastReadSeconds: 30, endpoint: { pollMinutes: 1 }, profiles: [{ id: "people", displayName: "p", contacts: { enabled: true }, calendar: { enabled: true } }] });
  await w.link("4990", "a@contoso.test", "people");
  await w.link("4991", "b@contoso.test");
  await w.link("4992", "c@contoso.test");
  await drain();
  await w.deps.state.modifyLink("L-4990", (l) => ({ ...l, lastSyncAt: ago(10), unreadVoice: 2, kinds: { contacts: { lastSyncAt: ago(300) } } }));
  await w.deps.state.modifyLink("L-4991", (l) => ({ ...l, lastSyncAt: ago(300), unreadVoice: 1 }));
  // Ran successfully 10 s ago, then failed (consent revoked): the failed run checked nothing.
  await w.link("4993", "d@contoso.test");
  await drain();
  await w.deps.state.modifyLink("L-4993", (l) => ({ ...l, lastSyncAt: ago(10), unreadVoice: 1, lastError: { code: "GRAPH_AUTH_FAILED", message: "consent revoked", at: ago(5) } }));
  await w.deps.state.modifyLink("L-4992", (l) => ({ ...l, lastSyncAt: ago(300), unreadVoice: 0, state: "paused" }));
}, 60_000);
afterAll(async () => { await w?.stop(); });

describe("timers", () => {
  it("poll: every enabled link and kind, except those that ran within the last minute", async () => {
    await enqueueLinks(w.deps, "poll");
    expect(runs(await drain())).toEqual(["L-4990 contacts", "L-4991 voicemail", "L-4993 voicemail"]);
  });

  it("poll: a kind whose run still waits in the queue gets no second one; once that run starts, the next tick polls it", async () => {
    // Break seen red: enqueueLinks without the queued mark -> the same three runs again.
    // The last test's runs were taken off the queue but never started: their marks stand.
    await enqueueLinks(w.deps, "poll");
    expect(runs(await drain())).toEqual([]);
    // A run starting clears its kind's mark (src/app/linkRun.ts runLinkUnderLease).
    await w.deps.state.clearQueued(runKeyOf("L-4991", "voicemail"));
    await enqueueLinks(w.deps, "poll");
    expect(runs(await drain())).toEqual(["L-4991 voicemail"]);
    for (const [id, kind] of [["L-4990", "contacts"], ["L-4991", "voicemail"], ["L-4993", "voicemail"]] as const) await w.deps.state.clearQueued(runKeyOf(id, kind));
  });

  it("fast read: only mailboxes with unread voicemail that did not just run", async () => {
    await enqueueLinks(w.deps, "fast-read");
    expect(runs(await drain())).toEqual(["L-4991 voicemail", "L-4993 voicemail"]);
  });

  it("fast read within its budget: one link per tick when the app allows one check a second, each due link in turn", async () => {
    // Break seen red: the budget ignored (every due link enqueued at once) -> 3 runs from the first tick.
    const deps = { ...w.deps, config: { ...w.deps.config, sync: { ...w.deps.config.sync, fastReadMaxPerSecond: 1, fastReadIntervalSeconds: 1 } } };
    await new Promise((r) => setTimeout(r, 600)); // the last test's checks are older than this interval
    // With a 1 s interval all three mailboxes with unread voicemail are due (4990 ran 10 s ago).
    const ticks: string[][] = [];
    for (let i = 0; i < 3; i++) {
      await enqueueLinks(deps, "fast-read");
      ticks.push(runs(await drain()));
    }
    expect(ticks.map((t) => t.length)).toEqual([1, 1, 1]);
    expect(ticks.flat().sort()).toEqual(["L-4990 voicemail", "L-4991 voicemail", "L-4993 voicemail"]);
  });

  it("reconcile: every kind of every enabled link, recent or not", async () => {
    await enqueueLinks(w.deps, "reconcile");
    expect(runs(await drain())).toEqual(["L-4990 calendar", "L-4990 contacts", "L-4990 subscriptions", "L-4990 voicemail", "L-4991 subscriptions", "L-4991 voicemail", "L-4993 subscriptions", "L-4993 voicemail"]);
  });

  it("fans out by shard: the timer enqueues one message per shard, each shard lists only its own links", async () => {
    expect(await fanOutSchedule(w.deps, "reconcile")).toBe(w.deps.config.sync.scheduleShards);
    const shards = await drain();
    expect(shards.map((r) => [r.kind, r.reason, r.shards])).toEqual(Array.from({ length: w.deps.config.sync.scheduleShards }, () => ["schedule", "reconcile", w.deps.config.sync.scheduleShards]));
    const enabled = ["L-4990", "L-4991", "L-4993"];
    let listed = 0;
    for (const req of shards) {
      const r = await runScheduleShard(w.deps, req);
      listed += r.report.links;
      const [from, to] = shardBuckets(req.shard!, req.shards!);
      const mine = enabled.filter((id) => linkBucket(id) >= from && linkBucket(id) < to);
      expect(r.report.links).toBe(mine.length);
      expect(runs(await drain()).map((x) => x.split(" ")[0]).filter((id, i, a) => a.indexOf(id) === i)).toEqual(mine);
    }
    expect(listed).toBe(enabled.length);
  });
});
