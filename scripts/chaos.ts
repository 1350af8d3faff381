/**
 * `npm run chaos`: fault cases against the full local world (Dovecot, Azurite, the Graph
 * simulator, the dev host with the real functions), each with its invariant checked at the
 * end: every voice message present exactly once in Exchange with the same read state, nothing
 * in Exchange without its voice original. Bounded in time, loopback only. Writes the results
 * table to docs/resilience.md.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startWorld, TENANT, type World } from "../test/e2e/world.js";
import { avayaVoiceMessage } from "../test/fixtures/voicemail.js";
import { SYNC_KEY_PROP } from "../src/graph/voicemail.js";

interface Case {
  name: string;
  injected: string;
  run(w: World, mailbox: string, userId: string): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every store message once in Exchange with the same read state; nothing extra. */
async function converged(w: World, mailbox: string, userId: string): Promise<string | undefined> {
  const c = await w.imap(mailbox);
  const store: boolean[] = [];
  try { for await (const m of c.fetch("1:*", { flags: true })) store.push(m.flags?.has("\\Seen") ?? false); } catch { /* empty mailbox */ }
  await c.logout();
  const copies = w.sim.outlook(userId).messages("inbox");
  const keys = copies.map((m) => m.ext.get(SYNC_KEY_PROP.toLowerCase())?.value);
  if (new Set(keys).size !== keys.length) return `duplicates: ${keys.length - new Set(keys).size}`;
  if (copies.length !== store.length) return `store ${store.length}, Exchange ${copies.length}`;
  const a = store.filter(Boolean).length, b = copies.filter((m) => m.isRead).length;
  if (a !== b) return `read: store ${a}, Exchange ${b}`;
  return undefined;
}

async function deposit(w: World, mailbox: string, n: number, tag: string) {
  for (let i = 0; i < n; i++) await w.dc.lda(mailbox, avayaVoiceMessage({ id: `${tag}-${i}` }));
}

const cases: Case[] = [
  { name: "429 storm", injected: "the next 40 Graph requests answer 429 with Retry-After: 1 while 20 voicemails arrive",
    run: async (w, mb) => { w.sim.faults.throttleNext = 40; await deposit(w, mb, 20, "storm"); } },
  { name: "5xx burst", injected: "the next 30 Graph requests answer 503 while 20 voicemails arrive",
    run: async (w, mb) => { w.sim.faults.fail5xxNext = 30; await deposit(w, mb, 20, "5xx"); } },
  { name: "slow Graph", injected: "every Graph request takes 400 ms while 10 voicemails arrive and 5 are read in Outlook",
    run: async (w, mb, user) => { w.sim.faults.latencyMs = 400; await deposit(w, mb, 10, "slow"); await sleep(8000); for (const m of w.sim.outlook(user).messages("inbox").slice(0, 5)) w.sim.outlook(user).markRead(m.id); await sleep(3000); w.sim.faults.latencyMs = 0; } },
  { name: "notifications dropped", injected: "all Graph notifications are lost while 10 copies are read in Outlook",
    run: async (w, mb, user) => { await deposit(w, mb, 10, "drop"); await sleep(2000); w.sim.faults.dropNotificationsNext = 10_000; for (const m of w.sim.outlook(user).messages("inbox")) w.sim.outlook(user).markRead(m.id); await sleep(500); w.sim.faults.dropNotificationsNext = 0; } },
  { name: "notifications duplicated, delayed and reordered", injected: "notifications doubled, held and delivered in reverse, reads and unreads in Outlook",
    run: async (w, mb, user) => { await deposit(w, mb, 6, "dup"); await sleep(2000); w.sim.faults.duplicateNotifications = true; w.sim.faults.reorderNotificationsBatch = 8;
      const ms = w.sim.outlook(user).messages("inbox"); for (const m of ms) { w.sim.outlook(user).markRead(m.id); w.sim.outlook(user).markRead(m.id, false); w.sim.outlook(user).markRead(m.id); }
      await sleep(500); w.sim.faults.reorderNotificationsBatch = 0; w.sim.flushHeldNotifications(); w.sim.faults.duplicateNotifications = false; } },
  { name: "delta token expiry", injected: "every delta token of the mailbox forgotten by Graph after 10 copies, then 5 more voicemails",
    run: async (w, mb, user) => { await deposit(w, mb, 10, "dx"); await sleep(2000); w.sim.expireDeltaTokens(user); await deposit(w, mb, 5, "dx2"); } },
  { name: "Dovecot restarted mid-sync", injected: "the voice store is killed and restarted while 30 voicemails are being copied",
    run: async (w, mb) => { await deposit(w, mb, 30, "restart"); await sleep(150); await w.dc.restart(); } },
  { name: "consent revoked and restored", injected: "the tenant's consent is revoked (Graph 403) while 10 voicemails arrive, restored 3 s later",
    run: async (w, mb) => { w.sim.tenants.get(TENANT)!.consentGranted = false; await deposit(w, mb, 10, "consent"); await sleep(3000); w.sim.tenants.get(TENANT)!.consentGranted = true; } },
  { name: "subscription removed", injected: "Graph removes the subscription (lifecycle subscriptionRemoved), then reads in Outlook",
    run: async (w, mb, user) => { await deposit(w, mb, 5, "subrm"); await sleep(2000); const [s] = [...w.sim.subscriptions.values()].filter((x) => x.userId === user); if (s) w.sim.fireLifecycle(s.id, "subscriptionRemoved"); await sleep(1500); for (const m of w.sim.outlook(user).messages("inbox")) w.sim.outlook(user).markRead(m.id); } },
  { name: "messages expunged while a sync runs", injected: "10 voicemails arrive and 3 are expunged on the store while they are being copied",
    run: async (w, mb) => { await deposit(w, mb, 10, "exp"); const c = await w.imap(mb); await c.messageDelete("2,5,8"); await c.logout(); } },
];

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const mailboxes = cases.map((_, i) => String(7100 + i));
const world = await startWorld({ users: mailboxes, quiet: true, fastReadSeconds: 2 });
const rows: string[] = [];
let failed = 0;
try {
  for (const [i, k] of cases.entries()) {
    const mb = mailboxes[i]!;
    const { userId } = await world.link(mb, `chaos${i}@contoso.test`);
    await sleep(1000);
    const t0 = Date.now();
    let verdict: string | undefined = "not run";
    try {
      await k.run(world, mb, userId);
      // Convergence within 60 s (timers: fast read every 5 s, poll every minute; queue retries).
      const end = Date.now() + 60_000;
      // Converged means: the invariant holds, and still holds 3 s later (nothing left in flight).
      do {
        verdict = await converged(world, mb, userId);
        if (!verdict) { await sleep(3000); verdict = await converged(world, mb, userId); if (!verdict) break; }
        await sleep(500);
      } while (Date.now() < end);
    } catch (e) {
      verdict = `error: ${(e as Error).message}`;
    }
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    if (verdict) failed++;
    rows.push(`| ${k.name} | ${k.injected} | each voice message once in Exchange, same read state, nothing extra | ${verdict ? `FAILED: ${verdict}` : `held; converged (and stable for 3 s) ${secs} s after the fault began`} |`);
    process.stdout.write(`${verdict ? "FAIL" : "ok  "} ${k.name} (${secs} s)${verdict ? `: ${verdict}` : ""}\n`);
  }
} finally {
  await world.stop();
}
const doc = `# Resilience

Generated by \`npm run chaos\` (scripts/chaos.ts) on ${new Date().toISOString().slice(0, 10)}; do not edit by hand.
Each case runs against the full local world (Dovecot, Azurite, the Graph simulator, the dev host
with the real functions and timers) on its own voice mailbox, then checks its invariant.
Further cases run in \`npm test\`: a crash after every write step (test/e2e/crash.test.ts),
UIDVALIDITY reset, emptied store (mass-delete guard), Graph budget exhaustion, lifecycle events,
forged webhooks and replayed store notifications (test/e2e/*.test.ts).

| case | injected | checked | result |
|---|---|---|---|
${rows.join("\n")}
`;
fs.mkdirSync(path.join(root, "docs"), { recursive: true });
fs.writeFileSync(path.join(root, "docs", "resilience.md"), doc);
process.stdout.write(`\n${cases.length - failed} of ${cases.length} cases held; docs/resilience.md written\n`);
process.exit(failed ? 1 : 0);
