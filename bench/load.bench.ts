/**
 * Load: 1,000 linked voice mailboxes, 10 voice messages each, deposited in ten bursts of one
 * message per mailbox, worked by four connector instances in processes of their own
 * (scripts/instance.ts) while this process serves the HTTP functions and fires the timers, as
 * in Azure. Graph answers every request after 20 ms. Measures convergence (every message once
 * in Exchange), Graph requests per message, 429s received, and each worker's peak RSS.
 * Writes docs/load.md. `npm run bench -- load`: on 2 CPUs about 45 minutes (depositing through
 * dovecot-lda, whose push waits for the webhook's answer, is most of it);
 * `UMC_LOAD_MAILBOXES=200` for a run of about 10 minutes (the document says which was measured).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startWorld } from "../test/e2e/world.js";
import { startInstance, type Instance } from "../test/harness/instance.js";
import { avayaVoiceMessage } from "../test/fixtures/voicemail.js";
import { SYNC_KEY_PROP } from "../src/graph/voicemail.js";
import { formatFigures, type Figure } from "./report.js";

const MAILBOXES = Number(process.env.UMC_LOAD_MAILBOXES ?? 1000);
const PER_MAILBOX = 10;
const WORKERS = 4;

export const title = `load: ${MAILBOXES.toLocaleString("en")} mailboxes x ${PER_MAILBOX} voice messages, ${WORKERS} workers`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pool<T>(items: T[], width: number, fn: (t: T) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => { while (next < items.length) await fn(items[next++]!); }));
}

export async function run(): Promise<Figure[]> {
  const users = Array.from({ length: MAILBOXES }, (_, i) => String(20000 + i));
  // Default settings: the fast read check at its default 5 s, though every mailbox holds unread voicemail here.
  const w = await startWorld({ users, sim: { latencyMs: 20 }, quiet: true, fastReadSeconds: "default", queueWorkers: false });
  const workers: Instance[] = [];
  try {
    for (let i = 0; i < WORKERS; i++) workers.push(await startInstance(w.env, { UMC_LOG_LEVEL: "warn" }));
    const ids = new Map<string, string>();
    const tLink = Date.now();
    await pool(users, 16, async (u) => { ids.set(u, (await w.link(u, `user${u}@contoso.test`)).userId); });
    // Linked: every first run done and every subscription created.
    const subscribed = () => new Set([...w.sim.subscriptions.values()].map((s) => s.userId)).size;
    while (subscribed() < MAILBOXES && Date.now() - tLink < 300_000) await sleep(250);
    const linkSeconds = (Date.now() - tLink) / 1000;
    await sleep(2000);

    const before = { requests: w.sim.stats.requests, throttled: w.sim.stats.throttled, routes: new Map(w.sim.stats.byRoute) };
    const t0 = Date.now();
    for (let burst = 0; burst < PER_MAILBOX; burst++) {
      await pool(users, 32, (u) => w.dc.lda(u, avayaVoiceMessage({ id: `load-${u}-${burst}` })));
    }
    const depositSeconds = (Date.now() - t0) / 1000;
    const tLastDeposit = Date.now();
    const count0 = (() => { let n = 0; for (const id of ids.values()) n += w.sim.outlook(id).messages("inbox").length; return n; })();
    const total = MAILBOXES * PER_MAILBOX;
    const count = () => { let n = 0; for (const id of ids.values()) n += w.sim.outlook(id).messages("inbox").length; return n; };
    // Catching up is timed from the last deposit (depositing alone can take longer than any
    // fixed limit from the first); five minutes, well past the 60 s reference, so a miss shows
    // as a large figure and the count below.
    while (count() < total && Date.now() - tLastDeposit < 300_000) await sleep(250);
    const convergeSeconds = (Date.now() - t0) / 1000;
    const catchUpSeconds = (Date.now() - tLastDeposit) / 1000;
    const minutes = (Date.now() - t0) / 60_000;
    // Let the follow-up runs finish before counting requests and duplicates.
    await sleep(5000);
    let dups = 0;
    let copies = 0;
    for (const id of ids.values()) {
      const keys = w.sim.outlook(id).messages("inbox").map((m) => m.ext.get(SYNC_KEY_PROP.toLowerCase())?.value);
      copies += keys.length;
      dups += keys.length - new Set(keys).size;
    }
    const requests = w.sim.stats.requests - before.requests;
    // Writes copy messages and set flags; reads are delta queries (notification-driven runs and
    // the fast read check of mailboxes holding unread voicemail) and lookups.
    let writes = 0;
    let reads = 0;
    for (const [route, n] of w.sim.stats.byRoute) {
      const d = n - (before.routes.get(route) ?? 0);
      if (route.startsWith("GET ")) reads += d; else if (!route.includes("/subscriptions")) writes += d;
    }
    const throttled = w.sim.stats.throttled - before.throttled;
    const rss = await Promise.all(workers.splice(0).map((i) => i.stop()));
    const peaks = rss.map((r) => (r.peakRssBytes ?? 0) / 1024 / 1024);
    const figures: Figure[] = [
      { name: `linking ${MAILBOXES} mailboxes (first run + subscription each)`, value: linkSeconds, unit: "s", reference: 120, better: "lower" },
      { name: "last deposit -> all in Exchange (catching up)", value: catchUpSeconds, unit: "s", reference: 60, better: "lower" },
      { name: "voice messages in Exchange", value: copies, unit: "", reference: total, better: "higher" },
      { name: "duplicates", value: dups, unit: "", reference: 0, better: "lower" },
      { name: "Graph write requests per voice message (create, flags)", value: writes / total, unit: "req", reference: 1.1, better: "lower" },
      { name: "Graph read requests (delta) per mailbox per minute, fast read check (default 5 s) included", value: reads / MAILBOXES / minutes, unit: "req", reference: 10, better: "lower" },
      { name: "Graph requests in all per voice message", value: requests / total, unit: "req", reference: 3, better: "lower" },
      { name: "429 responses received", value: throttled, unit: "", reference: 0, better: "lower" },
      { name: "worker peak RSS, highest of 4", value: Math.max(...peaks), unit: "MB", reference: 512, better: "lower" },
      { name: "worker peak RSS, lowest of 4", value: Math.min(...peaks), unit: "MB", reference: 512, better: "lower" },
    ];
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
    fs.mkdirSync(path.join(root, "docs"), { recursive: true });
    fs.writeFileSync(path.join(root, "docs", "load.md"), `# Load

Generated by \`npm run bench -- load\` (bench/load.bench.ts) on ${new Date().toISOString().slice(0, 10)}; do not edit by hand.
${MAILBOXES} linked voice mailboxes (voice profile), ${PER_MAILBOX} voice messages each, deposited through dovecot-lda
in ${PER_MAILBOX} bursts of one message per mailbox. One process serves the HTTP functions and the
timers; ${WORKERS} worker processes (scripts/instance.ts) take the queue (host.json batchSize 16 each).
The Graph simulator answers every request after 20 ms and enforces Graph's documented limits
(4 concurrent requests and 10,000 requests per 10 minutes per app and mailbox).
Measured on ${os.cpus().length} CPUs shared by everything above (dovecot-lda processes, Azurite, the
simulator, the workers): deposit and catch-up times are this machine's, not the connector's limit.

${formatFigures(title, figures)}

Not targets, for reading the figures above: ${count() === total ? "all" : `${count().toLocaleString("en")} of`} ${total.toLocaleString("en")} in Exchange ${convergeSeconds.toFixed(1)} s after the first deposit; depositing took ${depositSeconds.toFixed(1)} s (dovecot-lda on this machine,
32 at a time); at the last deposit ${(total - count0).toLocaleString("en")} of ${total.toLocaleString("en")} voice messages were not yet in Exchange.
`);
    return figures;
  } finally {
    await Promise.all(workers.map((i) => i.stop()));
    await w.stop();
  }
}
