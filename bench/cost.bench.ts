/**
 * The cost model (issue #19, point 4): what one user costs per day and 1,000 users per month
 * in Azure, for a stated workload, from unit costs measured on the full local world (real
 * functions, Azurite, Dovecot, the Graph simulator at 20 ms per request), every safety-net timer
 * off so each unit is measured alone. Rewrites docs/cost.md.
 *
 * Measured per unit (deposit, read in Outlook, the poll's store check, poll run, full reconcile run, subscription
 * upkeep run, timer shard): Functions executions (HTTP webhooks + queue messages), their
 * execution time, Table transactions (every billed call of the process, src/state/tables.ts
 * tableOps), queue operations (3 per message: put, get, delete), Graph requests (the
 * simulator's count) and log bytes (the JSON lines written). The day's counts come from the
 * schedules (src/app/schedule.ts, functions/timers.ts); prices from bench/azure-prices.ts.
 * Not counted: the Functions host's idle queue polling and storage capacity (per app, small),
 * Graph (no charge), voice-store side costs. Figures were taken on a 2-CPU machine shared with
 * other agents' work, so execution times are on the high side.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startWorld, SAFETY_NET_TIMERS, type World } from "../test/e2e/world.js";
import { avayaVoiceMessage } from "../test/fixtures/voicemail.js";
import { runSyncRequest } from "../src/app/voicemail.js";
import { handleSyncMessage, workerStats } from "../src/app/syncWorker.js";
import { fanOutSchedule } from "../src/app/schedule.js";
import { checkStore, nextCheckMinute } from "../src/app/storePoll.js";
import { tableOps } from "../src/state/tables.js";
import { PRICES } from "./azure-prices.js";
import type { Figure } from "./report.js";

export const title = "Cost model: per user per day, per 1,000 users per month (Azure list prices in bench/azure-prices.ts)";

/** The stated workload per user per day. */
export const WORKLOAD = { depositsPerDay: 5, readsInOutlookPerDay: 5, averageUnreadHoursPerMessage: 1 };
/** Memory a Functions instance is billed at (consumption rounds up to 128 MB; Node + the SDKs). */
const BILLED_GB = 0.25;

interface Unit { executions: number; ms: number; table: number; queue: number; graph: number; logBytes: number }
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tableTotal = () => [...tableOps.values()].reduce((a, b) => a + b, 0);

async function measure(w: World, times: number, fn: (i: number) => Promise<void>, httpPerTime: number): Promise<Unit> {
  const lines = (w.log as { lines?: unknown[] }).lines ?? [];
  const t0 = { t: tableTotal(), m: workerStats.messages, ms: workerStats.ms, g: w.sim.stats.requests, l: lines.length };
  for (let i = 0; i < times; i++) await fn(i);
  await w.queueDrained();
  const logBytes = lines.slice(t0.l).reduce<number>((a, l) => a + JSON.stringify(l).length + 1, 0);
  const messages = workerStats.messages - t0.m;
  return {
    executions: (messages + httpPerTime * times) / times,
    ms: (workerStats.ms - t0.ms) / times,
    table: (tableTotal() - t0.t) / times,
    queue: (3 * messages) / times,
    graph: (w.sim.stats.requests - t0.g) / times,
    logBytes: logBytes / times,
  };
}

const add = (a: Unit, b: Unit, k = 1): Unit => ({ executions: a.executions + k * b.executions, ms: a.ms + k * b.ms, table: a.table + k * b.table, queue: a.queue + k * b.queue, graph: a.graph + k * b.graph, logBytes: a.logBytes + k * b.logBytes });
const zero: Unit = { executions: 0, ms: 0, table: 0, queue: 0, graph: 0, logBytes: 0 };

export async function run(): Promise<Figure[]> {
  const w = await startWorld({ users: ["5301"], quiet: false, disabledFunctions: SAFETY_NET_TIMERS, fastReadSeconds: "default", sim: { latencyMs: 20, requestBudget: 1_000_000 } });
  try {
    const { userId, linkId } = await w.link("5301", "cost@contoso.test");
    await w.queueDrained();
    await sleep(1000);
    const inbox = () => w.sim.outlook(userId).messages("inbox");
    // A deposit: the store's push (1 HTTP execution), the run, Graph's notification of the copy (1 HTTP) and its run.
    const deposit = await measure(w, 5, async (i) => {
      const n = inbox().length;
      await w.dc.lda("5301", avayaVoiceMessage({ id: `cost-${i}` }));
      for (let k = 0; k < 400 && inbox().length <= n; k++) await sleep(25);
      await sleep(800);
    }, 2);
    // A read in Outlook: Graph's notification (1 HTTP), the run, the store's push of the STORE (1 HTTP, its own echo: no run).
    const read = await measure(w, 5, async (i) => {
      w.sim.outlook(userId).markRead(inbox()[i]!.id);
      await sleep(1200);
    }, 2);
    const fireRun = (reason: "poll" | "reconcile" | "fast-read") => async () => { await handleSyncMessage(w.deps, { linkId, reason, at: Date.now() }); };
    // A poll run: after a run wrote to the store (an Outlook read set \Seen) the next check sees the store moved.
    const poll = await measure(w, 10, fireRun("poll"), 0);
    // The poll's store check of one quiet link (src/app/storePoll.ts; the poll runs above saved
    // cursors past the reads' own writes), inside its shard's execution: the cursors' read, a
    // login and a STATUS; no run. Timed here (it has no queue message of its own).
    const link = (await w.deps.state.getLink(linkId))!;
    let checkMs = 0;
    let checkRuns = 0;
    const pollCheck = await measure(w, 10, async () => {
      const t = Date.now();
      checkRuns += (await checkStore(w.deps, link, ["voicemail"], new Set(), nextCheckMinute(linkId, 5))).run.length;
      checkMs += Date.now() - t;
    }, 0);
    pollCheck.ms = checkMs / 10;
    const fast = await measure(w, 10, fireRun("fast-read"), 0);
    const reconcile = await measure(w, 3, fireRun("reconcile"), 0);
    const upkeep = await measure(w, 3, async () => { await handleSyncMessage(w.deps, { linkId, kind: "subscriptions", reason: "scheduled", at: Date.now() }); }, 0);
    // A timer invocation: one message per shard (the shards' own work is per link: in the runs above).
    const timer = await measure(w, 3, async () => { await fanOutSchedule(w.deps, "poll"); await w.queueDrained(); }, 1);
    void runSyncRequest;

    // The day of one user. Timers: poll every minute (a run per link unless it just ran),
    // fast read every 5 s while the mailbox holds unread voicemail, reconcile hourly (voicemail
    // run + subscription check). Per-app timer invocations are shared by all users: per 1,000
    // users they are divided by 1,000.
    // The fast read check looks at a link only while it holds unread voicemail and within
    // UMC_FAST_READ_WINDOW_SECONDS (600) of its last change (a deposit or a read): at most the
    // unread time, at most one window per change.
    const unreadSeconds = WORKLOAD.depositsPerDay * WORKLOAD.averageUnreadHoursPerMessage * 3600;
    const windowSeconds = (WORKLOAD.depositsPerDay + WORKLOAD.readsInOutlookPerDay) * 600;
    const fastRuns = Math.min(unreadSeconds, windowSeconds) / 5;
    // Past the window, the poll asks for the same check once a minute while voicemail waits unread (the lamp).
    const lampRuns = Math.max(0, unreadSeconds - windowSeconds) / 60;
    // The poll checks the store every minute; it runs only after the store moved: here once per
    // Outlook read (the run's own \Seen; deposits and phone changes come with their push).
    // Every 5 minutes: the default pollMinutes of a store with push (src/app/endpoints.ts).
    const pollChecks = 1440 / 5;
    const pollRuns = WORKLOAD.readsInOutlookPerDay;
    const timerInvocationsPerDay = 1440 /* poll */ + 17_280 /* fast read */ + 24 /* reconcile */ + 288 /* renewals */;
    let day = zero;
    day = add(day, deposit, WORKLOAD.depositsPerDay);
    day = add(day, read, WORKLOAD.readsInOutlookPerDay);
    day = add(day, pollCheck, pollChecks);
    day = add(day, poll, pollRuns);
    day = add(day, fast, fastRuns + lampRuns);
    day = add(day, reconcile, 24);
    day = add(day, upkeep, 24);
    const perUserTimers = (users: number) => ({ ...timer, executions: timer.executions / users, ms: timer.ms / users, table: timer.table / users, queue: timer.queue / users, graph: 0, logBytes: timer.logBytes / users });
    day = add(day, perUserTimers(1000), timerInvocationsPerDay);

    const month = (x: number) => x * 30 * 1000; // per 1,000 users per month
    const execs = month(day.executions);
    const gbs = month((day.ms / 1000) * BILLED_GB);
    const cost = {
      executions: Math.max(0, execs - PRICES.functionsExecutions.freePerMonth) / PRICES.functionsExecutions.per * PRICES.functionsExecutions.usd,
      gbs: Math.max(0, gbs - PRICES.functionsGbSeconds.freePerMonth) * PRICES.functionsGbSeconds.usd,
      table: month(day.table) / PRICES.tableTransactions.per * PRICES.tableTransactions.usd,
      queue: month(day.queue) / PRICES.queueOperations.per * PRICES.queueOperations.usd,
      logs: Math.max(0, month(day.logBytes) / 1e9 - PRICES.logIngestionGb.freePerMonth) * PRICES.logIngestionGb.usd,
    };
    const total = Object.values(cost).reduce((a, b) => a + b, 0);
    writeDoc({ deposit, read, "poll check (quiet store)": pollCheck, "poll run": poll, "fast read check": fast, reconcile, upkeep, timer }, day, { execs, gbs, cost, total, fastRuns, lampRuns, pollChecks, pollRuns, timerInvocationsPerDay });
    const r = (x: number) => Math.round(x * 100) / 100;
    return [
      { name: "poll check of a quiet store: runs asked for", value: checkRuns, unit: "runs", reference: 0, better: "lower" },
      { name: "poll check of a quiet store vs a poll run: Table transactions (budget slots, credential gate, cursors)", value: r(pollCheck.table), unit: "transactions", reference: r(poll.table), better: "lower" },
      { name: "per user per day: Functions executions", value: r(day.executions), unit: "executions", reference: Infinity, better: "lower" },
      { name: "per user per day: execution time", value: r(day.ms / 1000), unit: "s", reference: Infinity, better: "lower" },
      { name: "per user per day: Table transactions", value: r(day.table), unit: "transactions", reference: Infinity, better: "lower" },
      { name: "per user per day: Queue operations", value: r(day.queue), unit: "operations", reference: Infinity, better: "lower" },
      { name: "per user per day: Graph requests", value: r(day.graph), unit: "requests", reference: 10_000 * 144, better: "lower" },
      { name: "per user per day: log volume", value: r(day.logBytes / 1024), unit: "KiB", reference: Infinity, better: "lower" },
      { name: "per 1,000 users per month (see docs/cost.md)", value: r(total), unit: "USD", reference: Infinity, better: "lower" },
    ];
  } finally {
    await w.stop();
  }
}

function writeDoc(units: Record<string, Unit>, day: Unit, m: { execs: number; gbs: number; cost: Record<string, number>; total: number; fastRuns: number; lampRuns: number; pollChecks: number; pollRuns: number; timerInvocationsPerDay: number }) {
  const f = (x: number, d = 2) => x.toLocaleString("en-US", { maximumFractionDigits: d });
  const row = (name: string, u: Unit) => `| ${name} | ${f(u.executions)} | ${f(u.ms, 0)} | ${f(u.table)} | ${f(u.queue)} | ${f(u.graph)} | ${f(u.logBytes, 0)} |`;
  const doc = `# What a user costs (generated by \`npm run bench -- cost\`; do not edit)

Generated ${new Date().toISOString().slice(0, 10)} from unit costs measured on the local world (real functions,
Azurite, Dovecot, Graph simulator at 20 ms per request), on a 2-CPU machine shared with other
work: execution times are on the high side. Prices: \`bench/azure-prices.ts\` (date and source per
row; rows marked unverified could not be confirmed from a stored page when last checked).

## Workload (per user per day)

- ${WORKLOAD.depositsPerDay} voice messages in, ${WORKLOAD.readsInOutlookPerDay} read in Outlook, each unread for ${WORKLOAD.averageUnreadHoursPerMessage} h on average;
- the timers at their defaults: poll every minute, each mailbox of a store with push checked every 5 minutes
  (${f(m.pollChecks, 0)} store checks, a login and a STATUS each, in the timer's shard; ${f(m.pollRuns, 0)} runs, one after each run that wrote to the store), fast read check every 5 s while unread
  voicemail waits, for 10 minutes after each change (${f(m.fastRuns, 0)} checks), and from the poll once a minute after that
  while it stays unread (${f(m.lampRuns, 0)} checks), reconcile hourly (24 runs + 24 subscription checks), renewals every 5 minutes;
  timer invocations (${f(m.timerInvocationsPerDay, 0)} a day per app) shared by 1,000 users;
- contacts and calendar are off in this workload (their runs are measured by \`npm run bench -- people\`).

## Unit costs (measured)

| unit | executions | execution ms | Table transactions | queue operations | Graph requests | log bytes |
|---|---|---|---|---|---|---|
${Object.entries(units).map(([k, u]) => row(k, u)).join("\n")}

## Per user per day

| executions | execution s | Table transactions | queue operations | Graph requests | log KiB |
|---|---|---|---|---|---|
| ${f(day.executions)} | ${f(day.ms / 1000)} | ${f(day.table)} | ${f(day.queue)} | ${f(day.graph)} | ${f(day.logBytes / 1024)} |

## Per 1,000 users per month (30 days), at the list prices

| meter | quantity | USD |
|---|---|---|
| Functions executions (1M free) | ${f(m.execs, 0)} | ${f(m.cost.executions!)} |
| Functions execution time at ${BILLED_GB} GB (400,000 GB-s free) | ${f(m.gbs, 0)} GB-s | ${f(m.cost.gbs!)} |
| Table transactions | ${f(month0(day.table), 0)} | ${f(m.cost.table!)} |
| Queue operations | ${f(month0(day.queue), 0)} | ${f(m.cost.queue!)} |
| Log ingestion (5 GB free) | ${f(month0(day.logBytes) / 1e9, 3)} GB | ${f(m.cost.logs!)} |
| **total** | | **${f(m.total)}** |

What dominates: the fast read checks while voicemail waits unread (one Graph delta and the lease,
no store login, no write: src/app/voicemail.ts quietFastRead) and the reconcile. The poll is no
longer a run per link and minute: its store check (src/app/storePoll.ts) reads the link's cursors
once and asks the store for a STATUS, and a run follows only when the store moved.

## Prices used

| meter | USD | per | checked | verified | source |
|---|---|---|---|---|---|
${Object.values(PRICES).map((p) => `| ${p.meter} | ${p.usd} | ${f(p.per, 0)} ${p.unit} | ${p.checked} | ${p.verified ? "yes" : "unverified"} | ${p.source} |`).join("\n")}
`;
  const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "docs", "cost.md");
  fs.writeFileSync(out, doc);
}
const month0 = (x: number) => x * 30 * 1000;
