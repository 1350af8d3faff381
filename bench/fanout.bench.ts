/**
 * Timer fan-out at 100,000 links (issue #19, point 3): link rows simulated in Azurite (as
 * createLink writes them, with their bucket), the real fan-out (src/app/schedule.ts): the timer
 * invocation enqueues one message per shard (UMC_SCHEDULE_SHARDS, default 16; the bench takes
 * it from its own environment) and lists no link; each shard's invocation lists its bucket
 * range and decides each link's runs. The runs
 * a shard enqueues are counted, not sent (100,000+ queue messages would measure Azurite's
 * queue, not the fan-out): the shard invocations get a queue client that counts its messages.
 * Reference for the whole pass: one invocation listing every link, as main's timers did.
 * Figures taken on a 2-CPU machine shared with other agents' builds and tests.
 */
import type { QueueClient } from "@azure/storage-queue";
import { startWorld, TENANT, ENDPOINT } from "../test/e2e/world.js";
import { fanOutSchedule, runScheduleShard } from "../src/app/schedule.js";
import { linkBucket } from "../src/state/links.js";
import type { SyncRequest } from "../src/app/syncQueue.js";
import type { Figure } from "./report.js";

export const title = `Timer fan-out at ${Number(process.env.UMC_BENCH_LINKS ?? 100_000).toLocaleString("en-US")} links (Azurite; 2 CPUs shared with other agents)`;

const LINKS = Number(process.env.UMC_BENCH_LINKS ?? 100_000);
const UNREAD = Math.round(LINKS / 100);

export async function run(): Promise<Figure[]> {
  // The shard count as an operator sets it (UMC_SCHEDULE_SHARDS; the product's default otherwise).
  const shardsSet = process.env.UMC_SCHEDULE_SHARDS;
  const w = await startWorld({ users: ["5201"], timers: false, queueWorkers: false, quiet: true, env: shardsSet ? { UMC_SCHEDULE_SHARDS: shardsSet } : {} });
  try {
    const links = await w.deps.state.tableClients.client("links");
    const runs = await w.deps.state.tableClients.client("runs");
    const at = new Date().toISOString();
    const seedStart = performance.now();
    const pending: Array<Promise<unknown>> = [];
    for (let b = 0; b < LINKS; b += 100) {
      const batch = Array.from({ length: Math.min(100, LINKS - b) }, (_, i) => {
        const linkId = `L-sim-${b + i}`;
        return ["upsert", { partitionKey: "link", rowKey: linkId, linkId, tenantId: TENANT, endpointId: ENDPOINT, voiceMailbox: String(100000 + b + i), userId: `u-${b + i}`, profileId: "default", state: "enabled", createdAt: at, updatedAt: at, unreadVoice: (b + i) % 100 === 0 ? 1 : 0, fastListed: (b + i) % 100 === 0 || undefined, bucket: linkBucket(linkId) }, "Replace"] as const;
      });
      pending.push(links.submitTransaction(batch.map(([a, e, m]) => [a, Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined)), m]) as never));
      const fast = batch.filter(([, e]) => e.fastListed).map(([, e]) => ["upsert", { partitionKey: "fast", rowKey: e.linkId, linkId: e.linkId, bucket: e.bucket }, "Replace"] as const);
      if (fast.length) pending.push(runs.submitTransaction(fast as never));
      if (pending.length >= 4) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
    await runs.upsertEntity({ partitionKey: "schedule", rowKey: "backfilled", at: Date.now() }, "Replace");
    const seedS = (performance.now() - seedStart) / 1000;

    // The timer invocation: one message per shard, no link read.
    const t0 = performance.now();
    const shardCount = await fanOutSchedule(w.deps, "poll");
    const timerMs = performance.now() - t0;
    const shards: SyncRequest[] = [];
    for (;;) {
      const r = await w.deps.syncQueue.receiveMessages({ numberOfMessages: 32 });
      if (!r.receivedMessageItems.length) break;
      for (const m of r.receivedMessageItems) { shards.push(JSON.parse(Buffer.from(m.messageText, "base64").toString("utf8")) as SyncRequest); await w.deps.syncQueue.deleteMessage(m.messageId, m.popReceipt); }
    }
    let sent = 0;
    const counting = { sendMessage: async () => { sent++; return {}; } } as unknown as QueueClient;
    const deps = { ...w.deps, syncQueue: counting };
    const measure = async (reason: "poll" | "fast-read") => {
      let largest = 0;
      let slowest = 0;
      let total = 0;
      const start = performance.now();
      for (const s of shards) {
        const t = performance.now();
        const r = await runScheduleShard(deps, { ...s, reason });
        const ms = performance.now() - t;
        largest = Math.max(largest, r.report.links);
        slowest = Math.max(slowest, ms);
        total += r.report.links;
      }
      return { largest, slowest, total, wallS: (performance.now() - start) / 1000 };
    };
    sent = 0;
    const poll = await measure("poll");
    const pollSent = sent;
    sent = 0;
    const fast = await measure("fast-read");
    // Main's way, for comparison: one invocation lists every link.
    const t1 = performance.now();
    const all = await w.deps.state.listLinks({ state: "enabled" });
    const oneScanMs = performance.now() - t1;
    const n = shardCount;
    return [
      { name: `timer invocation: messages enqueued (shards), links read (${LINKS} links seeded in ${seedS.toFixed(0)} s)`, value: 0, unit: "links read", reference: 0, better: "lower" },
      { name: "timer invocation time (enqueue one message per shard)", value: timerMs, unit: "ms", reference: 1000, better: "lower" },
      { name: `poll: largest shard invocation's links (of ${LINKS}; 1/N = ${Math.ceil(LINKS / n)}; N = ${n})`, value: poll.largest, unit: "links", reference: Math.ceil((LINKS / n) * 1.1), better: "lower" },
      { name: "poll: largest shard share of all links x N (1.0 = perfectly even)", value: (poll.largest / LINKS) * n, unit: "x", reference: 1.1, better: "lower" },
      { name: `poll: links the shards listed in all (runs decided: ${pollSent})`, value: poll.total, unit: "links", reference: all.length, better: "equal" },
      { name: "poll: slowest shard invocation", value: poll.slowest, unit: "ms", reference: oneScanMs, better: "lower" },
      { name: `poll: all ${n} shards one after the other (in Azure: in parallel on many workers)`, value: poll.wallS * 1000, unit: "ms", reference: Infinity, better: "lower" },
      { name: `for comparison: one invocation listing all ${all.length} links (main's timers)`, value: oneScanMs, unit: "ms", reference: Infinity, better: "lower" },
      { name: `fast read: largest shard invocation's links (${UNREAD} mailboxes with unread voicemail)`, value: fast.largest, unit: "links", reference: Math.ceil((UNREAD / n) * 2), better: "lower" },
      { name: "fast read: slowest shard invocation", value: fast.slowest, unit: "ms", reference: 1000, better: "lower" },
    ];
  } finally {
    await w.stop();
  }
}
