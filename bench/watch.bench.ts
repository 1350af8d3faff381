/**
 * Push without a hook (#16): IDLE watchers (src/app/watchers.ts) on Dovecot without its Lua push
 * hook, timers off (no poll), so only the watches bring store changes in.
 *  - UMC_BENCH_WATCHED (default 1,000) linked mailboxes watched by one watcher (the
 *    `watchStores` timer's function, run through its handler): connections held against the
 *    number of mailboxes, time until all are watched, the bench process's resident memory
 *    added by holding them (the process also runs the dev host and the Graph simulator);
 *  - deposit -> visible in Graph through IDLE: p50 / p99 over 40 deposits in watched mailboxes
 *    (one at a time);
 *  - the store restarts: time until every mailbox is watched again, and the most connections
 *    seen meanwhile against the watches' share of the budget (no burst above it).
 * Settings changed, each printed with its figure: the store's budget is raised so that the
 * watches' share (src/app/connectionBudget.ts watchLimits) covers every mailbox, Dovecot's imap
 * process_limit is raised above its default 1,024, and loginsAtOnce is 8 (the default 1 makes
 * 1,000 logins one after another). The test store runs every mailbox as one Unix user, so past
 * the kernel's 128 inotify instances per user (fs.inotify.max_user_instances) Dovecot's IDLE
 * stops hearing of new mail at once and polls every mailbox_idle_check_interval (30 s): its log
 * says "Inotify instance limit for user 65534 ... exceeded, disabling". That is the test store's
 * limit, not the connector's (a voice store is its own server), and it was the "stall" of the
 * #16 benches (deposits 10-30 s late, no login pending). The check interval is 1 s here.
 */
import fs from "node:fs";
import { startWorld } from "../test/e2e/world.js";
import { watchStoresEvenFunction } from "../functions/timers.js";
import { watchLimits } from "../src/app/connectionBudget.js";
import { avayaVoiceMessage } from "../test/fixtures/voicemail.js";
import { createLogger } from "../src/log.js";
import { percentile, type Figure } from "./report.js";
import { handshakesInFlight } from "../src/imap/endpoint.js";

export const title = "IDLE watchers: push without a hook";

const N = Number(process.env.UMC_BENCH_WATCHED ?? 1000);
const DEPOSITS = 40;
const HOLD_SECONDS = 240;
const budget = { perUser: 10, perAddress: Math.ceil((N * 4) / 3) + 4 };

const rssBytes = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync("/proc/self/status", "utf8"))![1]) * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function run(): Promise<Figure[]> {
  const users = Array.from({ length: N }, (_, i) => String(80000 + i));
  const w = await startWorld({
    users, timers: false, storePush: false,
    // UMC_BENCH_LOG=warn shows why watches break (JSON lines on stdout); quiet otherwise.
    ...(process.env.UMC_BENCH_LOG ? { logger: createLogger({ level: process.env.UMC_BENCH_LOG as "warn" }) } : { quiet: true }),
    endpoint: { notify: "idle", vendor: "dovecot", connectionBudget: budget, loginsAtOnce: 8 },
    env: { UMC_WATCH_HOLD_SECONDS: String(HOLD_SECONDS) },
    dovecotConf: `service imap {\n  process_limit = ${N + 200}\n}\ndefault_client_limit = ${N + 1000}\nmailbox_idle_check_interval = 1 secs\n`,
  });
  const connections = async () => (await w.dc.doveadm("who")).split("\n").slice(1).reduce((n, line) => n + (Number(line.trim().split(/\s+/)[1]) || 0), 0);
  // What a stall leaves behind (the #16 stalls logged nothing): handshakes in flight in this
  // process, connections the store holds, its log's last lines.
  const stalled = async (what: string) => {
    const h = handshakesInFlight();
    console.error(`watch bench STALL: ${what}; IMAP handshakes in flight ${h.count} (oldest ${(h.oldestMs / 1000).toFixed(1)} s); store connections ${await connections()}; load ${fs.readFileSync("/proc/loadavg", "utf8").trim()}\n${w.dc.log().split("\n").slice(-15).join("\n")}`);
  };
  try {
    // The deposit mailboxes get their first sync (subscriptions, cursors) before the watch, as
    // they would have in production; the rest are linked rows only.
    const timed = users.slice(0, DEPOSITS);
    const ids: Record<string, string> = {};
    for (const u of timed) ids[u] = (await w.link(u, `w${u}@contoso.test`)).userId;
    await w.queueDrained(300_000);
    const { TENANT, ENDPOINT } = await import("../test/e2e/world.js");
    for (const u of users.slice(DEPOSITS)) {
      const user = w.sim.addUser(TENANT, { userPrincipalName: `w${u}@contoso.test` });
      await w.deps.state.createLink({ linkId: `L-${u}`, tenantId: TENANT, endpointId: ENDPOINT, voiceMailbox: u, userId: user.id, profileId: "default", state: "enabled" });
    }
    const rss0 = rssBytes();
    const t0 = performance.now();
    const watcher = (watchStoresEvenFunction.handler as (t: unknown, c: unknown) => Promise<void>)({}, {});
    let held = 0;
    while (performance.now() - t0 < 120_000 && (held = await connections()) < N) await sleep(250);
    const watchAllSeconds = (performance.now() - t0) / 1000;
    await sleep(2000);
    const rssHeld = rssBytes() - rss0;

    const latencies: number[] = [];
    for (const [i, u] of timed.entries()) {
      const inbox = () => w.sim.outlook(ids[u]!).messages("inbox").length;
      const before = inbox();
      const t = performance.now();
      await w.dc.lda(u, avayaVoiceMessage({ id: `watch-${i}` }));
      while (inbox() === before && performance.now() - t < 10_000) await sleep(10);
      latencies.push(inbox() > before ? performance.now() - t : Infinity);
      if (inbox() === before) await stalled(`deposit ${i} in ${u} not in Graph after 10 s`);
    }

    // The store restarts: every watch breaks and comes back after a jittered wait.
    await w.dc.restart();
    const t1 = performance.now();
    let most = 0;
    let back = 0;
    while (performance.now() - t1 < 90_000) {
      back = await connections();
      most = Math.max(most, back);
      if (back >= N) break;
      await sleep(250);
    }
    const rewatchSeconds = (performance.now() - t1) / 1000;
    if (back < N) await stalled(`${back} of ${N} watched again ${rewatchSeconds.toFixed(0)} s after the restart`);
    console.error(`watch bench: ${back} connections ${rewatchSeconds.toFixed(1)} s after the restart`);
    const share = watchLimits(budget).perAddress;
    const setting = `budget ${budget.perAddress} per address (watch share ${share}), loginsAtOnce 8, Dovecot imap process_limit ${N + 200}, mailbox_idle_check_interval 1 s (the test store's inotify limit, see above)`;
    await watcher;
    return [
      { name: `${N} mailboxes: connections held by the watcher`, value: held, unit: "", reference: N, better: "equal", setting },
      { name: `${N} mailboxes: time until all are watched`, value: watchAllSeconds, unit: "s", reference: 30, better: "lower", setting },
      { name: `${N} mailboxes: resident memory added by holding the watches (per 1,000)`, value: (rssHeld / 2 ** 20) * (1000 / N), unit: "MB", reference: 200, better: "lower" },
      { name: "deposit -> visible in Graph through IDLE, p50", value: percentile(latencies, 50), unit: "ms", reference: 1000, better: "lower" },
      { name: "deposit -> visible in Graph through IDLE, p99", value: percentile(latencies, 99), unit: "ms", reference: 2000, better: "lower" },
      { name: `store restart: time until all ${N} are watched again`, value: rewatchSeconds, unit: "s", reference: 30, better: "lower", setting },
      { name: "store restart: most connections at once while re-watching (against the watches' share)", value: most, unit: "", reference: share, better: "lower", setting },
    ];
  } finally {
    await w.stop();
  }
}
