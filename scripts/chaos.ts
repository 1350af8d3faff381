/**
 * `npm run chaos`: fault cases against the full local world, each with its invariant checked at
 * the end, then a scan of every log line the run produced. Bounded in time, loopback only.
 * Writes the results table to docs/resilience.md.
 *
 * The world is laid out as in Azure: this process serves HTTP (webhooks, admin) and fires the
 * timers; the queue work is done by two connector instances in child processes
 * (scripts/instance.ts), so workers race for real and can be killed mid-step. Azurite runs on
 * disk so it can be taken away and brought back; Dovecot allows 10 connections per user and
 * address, its default.
 */
import fs from "node:fs";
import { QueueClient } from "@azure/storage-queue";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startWorld, TENANT, ADMIN_TOKEN, type World } from "../test/e2e/world.js";
import { startInstance, type Instance } from "../test/harness/instance.js";
import { avayaVoiceMessage } from "../test/fixtures/voicemail.js";
import { SYNC_KEY_PROP } from "../src/graph/voicemail.js";
import { voiceSyncKey } from "../src/sync/syncKey.js";
import { createLogger } from "../src/log.js";
import { enqueueSync } from "../src/app/syncQueue.js";
import { calendarWindow } from "../src/sync/calendarPlanner.js";
import { parseVCard } from "../src/formats/vcard.js";
import { parseOccurrence } from "../src/formats/icalendar.js";
import { storeItemText } from "../src/formats/storeItem.js";

interface Ctx { w: World; mailbox: string; userId: string; linkId: string; oldSubscriptions: string[] }
interface Case {
  name: string;
  injected: string;
  checked?: string;
  /** Feature profile of the case's link (default: voice only). */
  profile?: string;
  /** Longest wait for convergence (timers: fast read every 2 s, poll every minute). */
  timeoutMs?: number;
  /** Injects the fault. Throws when the fault could not be placed where it was meant to hit
   *  (e.g. the copying it should interrupt had not started or had already finished). */
  run(c: Ctx): Promise<void>;
  /** The fault happened to this case's mailbox: undefined when it did, else what is missing.
   *  A case whose fault did not land fails, whatever its invariant says. */
  landed(c: Ctx, lines: string[]): Promise<string | undefined> | string | undefined;
  /** The invariant; undefined when it holds, else what is wrong. */
  check?(c: Ctx): Promise<string | undefined>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const VOICE_INVARIANT = "per message: each store message's sync key exactly once in Exchange with the same read state; no Exchange item without a store message";
/** The longest fault of any case (the 12 s stall): a case must hold for longer than this. */
const STABLE_MS = 13_000;

/**
 * Per message: the store's messages by sync key (computed as the connector computes it, from
 * the envelope: src/sync/syncKey.ts) against the Exchange copies by their sync-key property.
 */
async function voiceConverged({ w, mailbox, userId }: Ctx): Promise<string | undefined> {
  const c = await w.imap(mailbox);
  const store = new Map<string, boolean>();
  try {
    if ((c.mailbox as { exists: number }).exists) {
      for await (const m of c.fetch("1:*", { flags: true, envelope: true, size: true, internalDate: true })) {
        const env = m.envelope;
        const key = voiceSyncKey({
          messageId: env?.messageId, date: env?.date ? new Date(env.date).toISOString() : undefined, from: env?.from?.[0]?.address,
          subject: env?.subject, size: m.size, internalDate: m.internalDate ? new Date(m.internalDate).toISOString() : undefined,
        });
        store.set(key, m.flags?.has("\\Seen") ?? false);
      }
    }
  } finally { await c.logout(); }
  const copies = new Map<string, boolean[]>();
  for (const m of w.sim.outlook(userId).messages("inbox")) {
    const key = String(m.ext.get(SYNC_KEY_PROP.toLowerCase())?.value ?? "(no sync key)");
    copies.set(key, [...(copies.get(key) ?? []), m.isRead]);
  }
  const problems: string[] = [];
  const missing = [...store.keys()].filter((k) => !copies.has(k));
  const doubled = [...copies].filter(([k, v]) => store.has(k) && v.length > 1);
  const orphans = [...copies].filter(([k]) => !store.has(k));
  const readDiffers = [...store].filter(([k, seen]) => copies.get(k)?.length === 1 && copies.get(k)![0] !== seen);
  if (missing.length) problems.push(`${missing.length} store message(s) not in Exchange`);
  if (doubled.length) problems.push(`${doubled.length} store message(s) copied more than once`);
  if (orphans.length) problems.push(`${orphans.reduce((n, [, v]) => n + v.length, 0)} Exchange item(s) without a store message`);
  if (readDiffers.length) problems.push(`${readDiffers.length} message(s) with a different read state (${readDiffers.filter(([, s]) => s).length} read on the store only)`);
  return problems.length ? `${problems.join("; ")} (store ${store.size}, Exchange ${[...copies.values()].flat().length})` : undefined;
}

async function folderTexts(w: World, mailbox: string, folder: string, kind: "vcard" | "calendar"): Promise<string[]> {
  const c = await w.imap(mailbox);
  const out: string[] = [];
  try {
    await c.mailboxOpen(folder);
    if ((c.mailbox as { exists: number }).exists) for await (const m of c.fetch("1:*", { source: true })) out.push(await storeItemText(m.source!, kind));
  } catch (e) {
    if (!/nonexistent|doesn't exist/i.test(JSON.stringify(e) + String(e))) throw e;
  } finally { await c.logout(); }
  return out;
}

const sorted = (xs: string[]) => [...xs].sort();
const sameList = (a: string[], b: string[]) => JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));

/** Contacts: the store's cards and the Outlook contacts hold the same people, once each. */
async function contactsConverged({ w, mailbox, userId }: Ctx): Promise<string | undefined> {
  const store = (await folderTexts(w, mailbox, "Contacts", "vcard")).map((t) => parseVCard(t).displayName ?? "");
  const graph = w.sim.people(userId).list().map((c) => String(c.props.displayName ?? ""));
  if (new Set(store).size !== store.length) return `store duplicates: ${store.length - new Set(store).size}`;
  if (new Set(graph).size !== graph.length) return `Exchange duplicates: ${graph.length - new Set(graph).size}`;
  if (!sameList(store, graph)) return `store ${store.length} cards, Exchange ${graph.length} contacts, different people`;
  return undefined;
}

/** Calendar: the store holds exactly the occurrences inside the window, with their subjects. */
async function calendarConverged({ w, mailbox, userId }: Ctx): Promise<string | undefined> {
  const win = calendarWindow(new Date(), 7, 60);
  const want = w.sim.calendar(userId).instances(new Date(win.start), new Date(win.end)).map((i) => `${i.start.toISOString()} ${i.data.subject}`);
  const have = (await folderTexts(w, mailbox, "Calendar", "calendar")).map((t) => { const o = parseOccurrence(t); return `${new Date(o.start).toISOString()} ${o.subject}`; });
  if (new Set(have).size !== have.length) return `store duplicates: ${have.length - new Set(have).size}`;
  if (!sameList(want, have)) return `store ${have.length} items, window ${want.length} occurrences, different`;
  return undefined;
}

async function deposit(w: World, mailbox: string, n: number, tag: string) {
  for (let i = 0; i < n; i++) await w.dc.lda(mailbox, avayaVoiceMessage({ id: `${tag}-${i}` }));
}

const copies = (w: World, userId: string) => w.sim.outlook(userId).messages("inbox").length;

/** Resolves once Exchange holds at least n copies (a run is then under way); throws on timeout,
 *  so a fault is never injected at a moment the case did not reach. */
async function copiesAtLeast(w: World, userId: string, n: number, ms = 60_000) {
  const end = Date.now() + ms;
  while (copies(w, userId) < n) {
    if (Date.now() > end) throw new Error(`setup: only ${copies(w, userId)} of ${n} copies after ${ms / 1000} s; the fault was not injected`);
    await sleep(20);
  }
}

/** The copying is still under way: some copies made, not all. Throws otherwise (fault not mid-work). */
function midCopy(w: World, userId: string, total: number, what: string): number {
  const n = copies(w, userId);
  if (n === 0 || n >= total) throw new Error(`setup: ${what} with ${n} of ${total} copies made: not while copying`);
  return n;
}

const CONTACT_CARD = (i: number) => `From: Avaya <mm@voice.test>\r\nSubject: card\r\nContent-Type: text/vcard; charset=utf-8\r\n\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nUID:chaos-card-${i}\r\nFN:Storeperson Q${i}\r\nN:Q${i};Storeperson;;;\r\nTEL;TYPE=WORK:+49 30 ${1000 + i}\r\nEND:VCARD\r\n`;

// ---- the world ------------------------------------------------------------------------
const instances: Instance[] = [];
/** Every worker ever started, the killed ones too (for the log scan and per-case lines). */
const everyInstance: Instance[] = [];
const parentLines: string[] = [];
const logger = createLogger({ level: "debug", sink: (_level, line) => { parentLines.push(JSON.stringify(line)); } });
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** What happened when, per case (shown in the results table). */
const notes = new Map<string, string>();
const faultsOf = (c: Ctx) => c.w.sim.mailboxFaults.arm(c.userId);
const got = (c: Ctx) => c.w.sim.mailboxFaults.delivered(c.userId);
/** A line of this case's link that mentions all of `words`. */
const logged = (lines: string[], c: Ctx, ...words: string[]) => lines.some((l) => l.includes(c.linkId) && words.every((x) => l.includes(x)));
const startWorkers = async (w: World) => { const two = [await startInstance(w.env, childEnv), await startInstance(w.env, childEnv)]; instances.push(...two); everyInstance.push(...two); };

/** What the issue-13 cases saw of their fault (read by their landed checks). */
let slowEndpointThrottled = 0;
let batchesSeen = 0;

const cases: Case[] = [
  { name: "429 storm", injected: "this mailbox's next 40 Graph requests answer 429 with Retry-After: 1 while 20 voicemails arrive",
    run: async (c) => { faultsOf(c).throttleNext = 40; await deposit(c.w, c.mailbox, 20, "storm"); },
    landed: (c) => (got(c).throttled === 40 ? undefined : `${got(c).throttled} of 40 throttled answers reached the mailbox`) },
  { name: "5xx burst", injected: "this mailbox's next 30 Graph requests answer 503 while 20 voicemails arrive",
    run: async (c) => { faultsOf(c).fail5xxNext = 30; await deposit(c.w, c.mailbox, 20, "5xx"); },
    landed: (c) => (got(c).fail5xx === 30 ? undefined : `${got(c).fail5xx} of 30 503 answers reached the mailbox`) },
  { name: "slow Graph", injected: "every Graph request of the mailbox takes 400 ms while 10 voicemails arrive and the first 5 copies are read in Outlook",
    run: async (c) => {
      faultsOf(c).latencyMs = 400;
      await deposit(c.w, c.mailbox, 10, "slow");
      await copiesAtLeast(c.w, c.userId, 5);
      for (const m of c.w.sim.outlook(c.userId).messages("inbox").slice(0, 5)) c.w.sim.outlook(c.userId).markRead(m.id);
      await copiesAtLeast(c.w, c.userId, 10);
      faultsOf(c).latencyMs = 0;
    },
    landed: (c) => (got(c).slowed >= 10 ? undefined : `only ${got(c).slowed} slowed requests`) },
  // Aimed at one mailbox, every stalled request costs that mailbox's run an outage retry with
  // growing backoff (2, 4, 8 ... s; src/app/syncWorker.ts): 8 of them took longer than 60 s to
  // work off in the first per-mailbox run, so this case waits longer.
  { name: "Graph answers after the request timeout", injected: "the mailbox's next 8 requests answer after 12 s, past the connector's request timeout (5 s here, 60 s by default), and then do their work, while 10 voicemails arrive", timeoutMs: 240_000,
    run: async (c) => { faultsOf(c).stallMs = 12_000; faultsOf(c).stallNext = 8; await deposit(c.w, c.mailbox, 10, "stall"); },
    landed: (c) => (got(c).stalled === 8 ? undefined : `${got(c).stalled} of 8 stalled answers reached the mailbox`) },
  { name: "notifications dropped", injected: "every Graph notification of the mailbox is lost while its 10 copies are read in Outlook",
    run: async (c) => {
      await deposit(c.w, c.mailbox, 10, "drop"); await copiesAtLeast(c.w, c.userId, 10);
      faultsOf(c).dropNotificationsNext = 10_000;
      for (const m of c.w.sim.outlook(c.userId).messages("inbox")) c.w.sim.outlook(c.userId).markRead(m.id);
      faultsOf(c).dropNotificationsNext = 0;
    },
    landed: (c) => (got(c).notificationsDropped >= 10 ? undefined : `${got(c).notificationsDropped} of 10 read notifications dropped`) },
  { name: "notifications duplicated, delayed and reordered", injected: "notifications doubled, held and delivered in reverse, reads and unreads in Outlook",
    run: async (c) => {
      const { w, userId } = c;
      await deposit(w, c.mailbox, 6, "dup"); await copiesAtLeast(w, userId, 6);
      dupSentBefore = w.sim.stats.notificationsSent;
      w.sim.faults.duplicateNotifications = true; w.sim.faults.reorderNotificationsBatch = 8;
      const ms = w.sim.outlook(userId).messages("inbox"); for (const m of ms) { w.sim.outlook(userId).markRead(m.id); w.sim.outlook(userId).markRead(m.id, false); w.sim.outlook(userId).markRead(m.id); }
      await sleep(500); w.sim.faults.reorderNotificationsBatch = 0; w.sim.flushHeldNotifications(); w.sim.faults.duplicateNotifications = false;
    },
    // 6 copies x 3 changes, each sent twice.
    landed: (c) => { const n = c.w.sim.stats.notificationsSent - dupSentBefore; return n >= 36 ? undefined : `${n} of 36 doubled notifications delivered`; } },
  { name: "delta token expiry", injected: "every delta token of the mailbox forgotten by Graph after 10 copies, then 5 more voicemails",
    run: async (c) => { await deposit(c.w, c.mailbox, 10, "dx"); await copiesAtLeast(c.w, c.userId, 10); c.w.sim.expireDeltaTokens(c.userId); await deposit(c.w, c.mailbox, 5, "dx2"); },
    landed: (c, lines) => (logged(lines, c, "graph.delta.expired") ? undefined : "no run of the mailbox met the expired token (no graph.delta.expired)") },
  { name: "Dovecot restarted mid-sync", injected: "the voice store is killed and restarted while 30 voicemails arrive and are being copied",
    run: async (c) => {
      const depositing = deposit(c.w, c.mailbox, 30, "restart");
      await copiesAtLeast(c.w, c.userId, 3);
      notes.set(c.linkId, `restarted with ${midCopy(c.w, c.userId, 30, "restart")} of 30 copies made`);
      await c.w.dc.restart();
      await depositing;
    },
    // Mid-work is checked in run() (copies under way when the store went down). Whether a run held
    // a session at that instant is chance: it is reported, not required.
    landed: (c, lines) => { notes.set(c.linkId, `${notes.get(c.linkId)}; ${logged(lines, c, "IMAP_UNAVAILABLE") || logged(lines, c, "voicemail.sync.failed") ? "a run lost its session" : "no run held a session at that instant"}`); return undefined; } },
  { name: "IMAP connection limit reached", injected: "all 10 connections Dovecot allows the user from this address are held by others for 8 s while 10 voicemails arrive",
    run: async (c) => {
      const held = [];
      for (let i = 0; i < 10; i++) held.push(await c.w.imap(c.mailbox));
      await deposit(c.w, c.mailbox, 10, "connlimit");
      await sleep(8000);
      notes.set(c.linkId, `${copies(c.w, c.userId)} copies while the connections were held`);
      await Promise.all(held.map((x) => x.logout().catch(() => undefined)));
    },
    landed: (c, lines) => (logged(lines, c, "IMAP_CONNECTION_LIMIT") ? undefined : "no run of the mailbox was refused a connection") },
  { name: "consent revoked and restored", injected: "the tenant's consent is revoked (Graph 403) while 10 voicemails arrive, restored 3 s later", timeoutMs: 90_000,
    run: async (c) => { c.w.sim.tenants.get(TENANT)!.consentGranted = false; await deposit(c.w, c.mailbox, 10, "consent"); await sleep(3000); c.w.sim.tenants.get(TENANT)!.consentGranted = true; },
    landed: (c, lines) => (logged(lines, c, "FORBIDDEN") ? undefined : "no run of the mailbox was refused by Graph (FORBIDDEN)") },
  { name: "subscription removed", injected: "Graph removes the mailbox's subscription (lifecycle subscriptionRemoved), then the copies are read in Outlook",
    checked: `${VOICE_INVARIANT}; a new subscription exists in Graph and in the state store, the removed one in neither`,
    run: async (c) => {
      await deposit(c.w, c.mailbox, 5, "subrm"); await copiesAtLeast(c.w, c.userId, 5);
      const subs = [...c.w.sim.subscriptions.values()].filter((x) => x.userId === c.userId);
      if (!subs.length) throw new Error("setup: the mailbox has no subscription to remove");
      c.oldSubscriptions.push(...subs.map((s) => s.id));
      for (const s of subs) c.w.sim.fireLifecycle(s.id, "subscriptionRemoved");
      // Read in Outlook once a new subscription exists (a read before would travel by the fast read check only).
      const end = Date.now() + 20_000;
      while (![...c.w.sim.subscriptions.values()].some((x) => x.userId === c.userId)) { if (Date.now() > end) throw new Error("no new subscription within 20 s"); await sleep(100); }
      for (const m of c.w.sim.outlook(c.userId).messages("inbox")) c.w.sim.outlook(c.userId).markRead(m.id);
    },
    landed: (c) => (c.oldSubscriptions.length ? undefined : "no subscription removed"),
    check: async (c) => {
      const v = await voiceConverged(c);
      if (v) return v;
      const inGraph = [...c.w.sim.subscriptions.values()].filter((x) => x.userId === c.userId).map((x) => x.id);
      const inState = (await c.w.deps.state.listSubscriptions({ linkId: c.linkId })).map((x) => x.subscriptionId);
      if (inGraph.some((id) => c.oldSubscriptions.includes(id)) || inState.some((id) => c.oldSubscriptions.includes(id))) return "the removed subscription is still listed";
      if (inGraph.length !== 1 || !inState.includes(inGraph[0]!)) return `subscriptions: Graph ${inGraph.length}, state ${inState.length}, not one new one in both`;
      return undefined;
    } },
  { name: "messages expunged while a sync runs", injected: "10 voicemails arrive and 3 are expunged on the store while they are being copied (Graph answers this mailbox in 600 ms, so the copying is still under way)",
    run: async (c) => {
      faultsOf(c).latencyMs = 600;
      await deposit(c.w, c.mailbox, 10, "exp");
      await copiesAtLeast(c.w, c.userId, 1);
      notes.set(c.linkId, `expunged with ${midCopy(c.w, c.userId, 10, "expunge")} of 10 copies made`);
      const x = await c.w.imap(c.mailbox); await x.messageDelete("2,5,8"); await x.logout();
      faultsOf(c).latencyMs = 0;
    },
    landed: () => undefined /* run() throws when the expunge did not come mid-copy */ },
  { name: "two workers racing on one mailbox", injected: "both worker processes get 12 runs of the same mailbox at once (reconcile, follow-up, admin) while 20 voicemails arrive and 10 are read in Outlook",
    run: async ({ w, mailbox, userId, linkId }) => {
      const burst = () => Promise.all(["reconcile", "follow-up", "admin", "reconcile", "follow-up", "admin"].map((reason) => enqueueSync(w.deps.syncQueue, { linkId, reason: reason as "admin", at: Date.now() })));
      const depositing = deposit(w, mailbox, 20, "race");
      await burst();
      await copiesAtLeast(w, userId, 10);
      await burst();
      for (const m of w.sim.outlook(userId).messages("inbox").slice(0, 10)) w.sim.outlook(userId).markRead(m.id);
      await depositing;
    },
    landed: (c) => {
      const busy = instances.filter((i) => i.lines.some((l) => l.includes(c.linkId)));
      return busy.length === 2 ? undefined : `only ${busy.length} of the 2 workers touched the mailbox`;
    } },
  { name: "worker processes killed mid-copy", injected: "SIGKILL to both worker processes while 40 voicemails arrive and are being copied (leases left behind); two fresh workers start 1 s later", timeoutMs: 180_000,
    run: async (c) => {
      const { w, userId } = c;
      const depositing = deposit(w, c.mailbox, 40, "kill");
      await copiesAtLeast(w, userId, 5);
      const dead = instances.splice(0, instances.length);
      await Promise.all(dead.map((i) => i.kill()));
      notes.set(c.linkId, `killed with ${midCopy(w, userId, 40, "kill")} of 40 copies made`);
      await sleep(1000);
      await Promise.all([depositing, startWorkers(w)]);
    },
    landed: () => undefined /* run() throws when the kill did not come mid-copy */ },
  { name: "state store unavailable", injected: "Azurite (tables and queues) stopped for 8 s while 10 voicemails are copied; 5 more arrive during the outage (their push notifications fail)", timeoutMs: 120_000,
    run: async ({ w, mailbox }) => {
      await deposit(w, mailbox, 10, "state");
      const outage = w.az.restart(8000);
      await sleep(1000);
      await deposit(w, mailbox, 5, "state-down");
      await outage;
    },
    // The 5 deposits during the outage: their push could not be queued, so the parent logged a failure.
    landed: (_c, lines) => (lines.some((l) => /STATE_UNAVAILABLE|ECONNREFUSED|function\.failed|queue\.poll\.failed/.test(l)) ? undefined : "nothing noticed the outage") },
  { name: "poisoned queue messages", injected: "3 malformed messages (not JSON, not a sync request, an unknown kind) and one for an unknown link are queued among 10 voicemails",
    checked: `${VOICE_INVARIANT}; the 3 malformed messages end in sync-mailbox-poison, nothing else does`,
    run: async ({ w, mailbox }) => {
      poisonBefore = (await poisonTexts(w)).length;
      const raw = (text: string) => w.deps.syncQueue.sendMessage(Buffer.from(text).toString("base64"));
      await raw("this is not json");
      await raw(JSON.stringify({ hello: "world" }));
      await raw(JSON.stringify({ linkId: "L-7100", kind: "fax-machine", reason: "admin", at: Date.now() }));
      await enqueueSync(w.deps.syncQueue, { linkId: "L-does-not-exist", reason: "admin", at: Date.now() });
      await deposit(w, mailbox, 10, "poison");
    },
    landed: () => undefined /* the check counts the poison queue */,
    check: async (c) => {
      const v = await voiceConverged(c);
      if (v) return v;
      const poison = (await poisonTexts(c.w)).slice(poisonBefore);
      const ours = poison.filter((t) => /this is not json|hello|fax-machine/.test(t));
      if (ours.length !== 3) return `poison queue holds ${ours.length} of the 3 malformed messages`;
      if (poison.length !== 3) return `poison queue holds ${poison.length - 3} other messages: ${poison.filter((t) => !ours.includes(t)).join(" ")}`;
      return undefined;
    } },
  { name: "contacts under faults", profile: "people", injected: "100 Outlook contacts and 50 store cards appear at once; 20 of the mailbox's Graph requests answer 503 and Dovecot restarts during the first sync",
    checked: "store cards and Outlook contacts hold the same 150 people, once each", timeoutMs: 90_000,
    run: async (c) => {
      const { w, mailbox, userId } = c;
      for (let i = 0; i < 100; i++) w.sim.people(userId).add({ displayName: `Outlookperson Q${i}`, givenName: "Outlookperson", surname: `Q${i}`, businessPhones: [`+49 40 ${1000 + i}`] });
      const x = await w.imap(mailbox);
      try { await x.mailboxCreate("Contacts").catch(() => undefined); for (let i = 0; i < 50; i++) await x.append("Contacts", Buffer.from(CONTACT_CARD(i))); } finally { await x.logout(); }
      faultsOf(c).fail5xxNext = 20;
      await sleep(400);
      await w.dc.restart();
    },
    landed: (c) => (got(c).fail5xx === 20 ? undefined : `${got(c).fail5xx} of 20 503 answers reached the mailbox`),
    check: contactsConverged },
  { name: "calendar under faults", profile: "people", injected: "40 events and a daily series; then Graph forgets the delta tokens, 20 of the mailbox's requests answer 429, 10 events move and 5 are deleted",
    checked: "the store's Calendar folder holds exactly the occurrences inside the window, once each", timeoutMs: 90_000,
    run: async (c) => {
      const { w, userId } = c;
      const cal = w.sim.calendar(userId);
      const day = (offset: number, h: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10) + `T${String(h).padStart(2, "0")}:00:00`;
      const ids = [];
      for (let i = 0; i < 40; i++) ids.push(cal.add({ subject: `Chaos meeting ${i}`, start: { dateTime: day(i % 30, 9 + (i % 8)), timeZone: "UTC" }, end: { dateTime: day(i % 30, 10 + (i % 8)), timeZone: "UTC" } }).id);
      cal.add({ subject: "Chaos stand-up", start: { dateTime: day(-2, 8), timeZone: "Europe/Berlin" }, end: { dateTime: day(-2, 9), timeZone: "Europe/Berlin" }, recurrence: { pattern: { type: "daily", interval: 1 }, range: { type: "numbered", startDate: day(-2, 8).slice(0, 10), numberOfOccurrences: 20 } } });
      const end = Date.now() + 30_000; // the first sync has put the events in the store
      while ((await folderTexts(w, c.mailbox, "Calendar", "calendar")).length < 40) { if (Date.now() > end) throw new Error("setup: the first calendar sync did not finish"); await sleep(500); }
      w.sim.expireDeltaTokens(userId);
      faultsOf(c).throttleNext = 20;
      for (const id of ids.slice(0, 10)) cal.update(id, { start: { dateTime: day(31, 14), timeZone: "UTC" }, end: { dateTime: day(31, 15), timeZone: "UTC" } });
      for (const id of ids.slice(10, 15)) cal.remove(id);
    },
    landed: (c) => (got(c).throttled === 20 ? undefined : `${got(c).throttled} of 20 throttled answers reached the mailbox`),
    check: calendarConverged },
  // Issue 13: what real Graph does to the connector's subscriptions and webhooks.
  { name: "Graph-fired lifecycle events", injected: "Graph asks every subscription to be reauthorized (near expiry, then after a permission change) while 10 voicemails arrive and are read in Outlook", timeoutMs: 90_000,
    run: async ({ w, mailbox, userId }) => {
      w.sim.faults.reauthorizeLeadMs = 8 * 24 * 3600_000; // every subscription counts as near expiry
      await deposit(w, mailbox, 10, "reauth");
      await copiesAtLeast(w, userId, 10);
      w.sim.changeAppRoles(TENANT, w.deps.config.identity.clientId!, [...w.sim.tenants.get(TENANT)!.apps.get(w.deps.config.identity.clientId!)!.roles]);
      for (const m of w.sim.outlook(userId).messages("inbox")) w.sim.outlook(userId).markRead(m.id);
      await sleep(3000);
      w.sim.faults.reauthorizeLeadMs = 0;
    },
    // The connector's worker answered a Graph-fired reauthorizationRequired of this mailbox's subscription.
    landed: (c, lines) => (logged(lines, c, "subscription.upkeep.done", "graph-reauthorize") ? undefined : "no reauthorize of this link's subscription was logged") },
  { name: "slow endpoint throttled and dropped", injected: "Graph counts every webhook answer as too late (3 s window): the endpoint is throttled, new notifications are dropped, then each subscription gets 'missed'; reads in Outlook meanwhile", timeoutMs: 120_000,
    run: async ({ w, mailbox, userId }) => {
      await deposit(w, mailbox, 10, "slowep");
      await copiesAtLeast(w, userId, 10);
      await sleep(1000);
      w.sim.delivery.answerWindowMs = 1;
      for (const m of w.sim.outlook(userId).messages("inbox")) { w.sim.outlook(userId).markRead(m.id); await sleep(150); }
      await sleep(8000);
      w.sim.delivery.answerWindowMs = 3000;
      slowEndpointThrottled = w.sim.stats.endpointThrottled;
    },
    landed: () => (slowEndpointThrottled > 0 ? undefined : "Graph never throttled the endpoint") },
  { name: "batched notifications", injected: "Graph sends the notifications of 1 s in one POST while 15 voicemails arrive and are read, unread and read again in Outlook",
    run: async ({ w, mailbox, userId }) => {
      w.sim.delivery.batchWindowMs = 1000;
      await deposit(w, mailbox, 15, "batch");
      await copiesAtLeast(w, userId, 15);
      for (const m of w.sim.outlook(userId).messages("inbox")) { w.sim.outlook(userId).markRead(m.id); w.sim.outlook(userId).markRead(m.id, false); w.sim.outlook(userId).markRead(m.id); }
      await sleep(2000);
      w.sim.delivery.batchWindowMs = 20;
      batchesSeen = w.sim.stats.batchesSent;
    },
    landed: () => (batchesSeen > 0 ? undefined : "no POST carried more than one notification") },
];

async function poisonTexts(w: World): Promise<string[]> {
  const q = new QueueClient(w.az.connectionString, `${w.deps.config.storage.syncQueue}-poison`);
  if (!(await q.exists())) return [];
  const out: string[] = [];
  const got = await q.peekMessages({ numberOfMessages: 32 });
  for (const m of got.peekedMessageItems) out.push(Buffer.from(m.messageText, "base64").toString("utf8"));
  return out;
}

let poisonBefore = 0;
let dupSentBefore = 0;
const childEnv = { UMC_LOG_LEVEL: "debug" };
const mailboxes = cases.map((_, i) => String(7100 + i));
const world = await startWorld({
  users: mailboxes, logger, fastReadSeconds: 2, env: { UMC_GRAPH_REQUEST_TIMEOUT_SECONDS: "5" }, persistentStorage: true, maxUserIpConnections: 10, queueWorkers: false,
  profiles: [{ id: "people", displayName: "Voice, contacts and calendar", contacts: { enabled: true }, calendar: { enabled: true } }],
});
await startWorkers(world);
const rows: string[] = [];
let failed = 0;
const started = Date.now();
try {
  for (const [i, k] of cases.entries()) {
    const mailbox = mailboxes[i]!;
    const { userId, linkId } = await world.link(mailbox, `chaos${i}@contoso.test`, k.profile ?? "default");
    const ctx: Ctx = { w: world, mailbox, userId, linkId, oldSubscriptions: [] };
    const check = k.check ?? voiceConverged;
    let verdict: string | undefined = "not run";
    let converged: number | undefined;
    const t0 = Date.now();
    const mark = { parent: parentLines.length, workers: new Map(everyInstance.map((x) => [x, x.lines.length])) };
    const linesSince = () => [...parentLines.slice(mark.parent), ...everyInstance.flatMap((x) => x.lines.slice(mark.workers.get(x) ?? 0))];
    try {
      // The link's first run has made its subscription: the case starts from a linked mailbox.
      const ready = Date.now() + 30_000;
      while (!(await world.deps.state.getLink(linkId))?.lastSyncAt || !(await world.deps.state.listSubscriptions({ linkId })).length) {
        if (Date.now() > ready) throw new Error("setup: the link's first run did not finish");
        await sleep(200);
      }
      await k.run(ctx);
      const end = Date.now() + (k.timeoutMs ?? 60_000);
      // Converged means: the invariant holds, and keeps holding on every check for STABLE_MS,
      // longer than the longest fault of any case (nothing left in flight can undo it).
      let heldSince: number | undefined;
      let broke: string | undefined;
      for (;;) {
        verdict = await check(ctx);
        if (verdict) { if (heldSince !== undefined) broke = verdict; heldSince = undefined; }
        else {
          heldSince ??= Date.now();
          if (Date.now() - heldSince >= STABLE_MS) { converged = heldSince; break; }
        }
        if (heldSince === undefined && Date.now() > end) { if (broke) verdict = `held for a while, then broke: ${broke}; now: ${verdict}`; break; }
        await sleep(1000);
      }
      const missed = await k.landed(ctx, linesSince());
      if (missed) verdict = `${verdict ? `${verdict}; ` : ""}the fault did not land: ${missed}`;
    } catch (e) {
      verdict = `error: ${(e as Error).message}`;
    }
    const secs = (((converged ?? Date.now()) - t0) / 1000).toFixed(1);
    if (verdict) failed++;
    const note = notes.get(linkId);
    rows.push(`| ${k.name} | ${k.injected} | ${k.checked ?? VOICE_INVARIANT} | ${verdict ? `FAILED: ${verdict}` : `held; converged ${secs} s after the fault began, then held on every check for ${STABLE_MS / 1000} s; the fault reached this mailbox${note ? ` (${note})` : ""}`} |`);
    process.stdout.write(`${verdict ? "FAIL" : "ok  "} ${k.name} (${secs} s)${verdict ? `: ${verdict}` : ""}${note ? ` [${note}]` : ""}\n`);
  }
} finally {
  for (const i of instances) await i.stop();
  await world.stop();
}

// ---- the log scan ----------------------------------------------------------------------
// Everything the connector logged (this process and every worker, the killed ones too) must
// be free of message content, audio, contact and event data, tokens and passwords.
const allLines = [...parentLines, ...everyInstance.flatMap((i) => i.lines)];
// Every process must have been heard: a process whose output was not captured would pass the scan unread.
const silent = [...(parentLines.length ? [] : ["this process"]), ...everyInstance.filter((i) => !i.lines.length).map((i) => `worker ${i.pid}`)];
const env = world.env;
const secrets = [env.UMC_WEBHOOK_SECRET!, env.UMC_STORE_NOTIFY_SECRET!, env.UMC_CLIENT_SECRET!, ADMIN_TOKEN, world.dc.master.pass, ...mailboxes.map((m) => `pw-${m}`)];
const probes: Array<[string, (line: string) => boolean]> = [
  ["a password or secret", (l) => secrets.some((s) => l.includes(s))],
  ["a bearer token or JWT", (l) => /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/.test(l) || /Bearer [A-Za-z0-9]/.test(l)],
  ["voice message content", (l) => l.includes("You have a new voice message") || l.includes("Voice message from")],
  ["audio", (l) => l.includes("UklGR")],
  ["contact data", (l) => /(Outlookperson|Storeperson) Q\d/.test(l) || l.includes("+49 40 10")],
  ["event data", (l) => /Chaos (meeting|stand-up)/.test(l)],
];
// A control first: each probe must catch its own planted line, or the scan proves nothing.
const planted = [`{"password":"${secrets[0]}"}`, `{"h":"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc"}`, `{"x":"You have a new voice message."}`, `{"x":"UklGRiQA"}`, `{"x":"Outlookperson Q1"}`, `{"x":"Chaos meeting 3"}`];
const blind = probes.filter(([, test], i) => !test(planted[i]!)).map(([what]) => what);
if (blind.length) throw new Error(`log scan probes do not catch: ${blind.join(", ")}`);
const findings = probes.map(([what, test]) => ({ what, lines: allLines.filter(test) }));
const found = findings.filter((f) => f.lines.length);
for (const f of found) process.stdout.write(`FAIL log scan: ${f.lines.length} lines with ${f.what}, e.g. ${f.lines[0]!.slice(0, 300)}\n`);
for (const p of silent) process.stdout.write(`FAIL log scan: no lines from ${p}\n`);
if (found.length || silent.length) failed++;
rows.push(`| log scan | every log line of the run at debug level: ${parentLines.length.toLocaleString("en")} from this process, ${(allLines.length - parentLines.length).toLocaleString("en")} from the ${everyInstance.length} worker processes (${everyInstance.map((i) => i.lines.length.toLocaleString("en")).join(", ")}; the killed ones too), each process heard from (each probe first checked against a planted line) | no password or secret, token, message content, audio, contact or event data | ${found.length || silent.length ? `FAILED: ${[...found.map((f) => `${f.lines.length} with ${f.what}`), ...silent.map((p) => `no lines from ${p}`)].join(", ")}` : "held; nothing found"} |`);
process.stdout.write(`${found.length || silent.length ? "FAIL" : "ok  "} log scan (${allLines.length} lines)\n`);

const doc = `# Resilience

Generated by \`npm run chaos\` (scripts/chaos.ts) on ${new Date().toISOString().slice(0, 10)} in ${((Date.now() - started) / 60_000).toFixed(1)} min; do not edit by hand.
Each case runs against the full local world on its own voice mailbox, laid out as in Azure: one
process serves the HTTP functions (Graph and store notifications) and fires the timers, two
worker processes (scripts/instance.ts) take the queue; Dovecot allows 10 connections per user
and address (its default); Azurite keeps its data on disk so it can be stopped and started.
Faults are aimed at the case's own mailbox (the simulator's per-mailbox faults) and counted as
they reach it: a case whose fault did not land fails, and so does one whose fault could not be
placed mid-work (e.g. Dovecot restarted when no copy was under way). Voice invariants are per
message: each store message's sync key exactly once in Exchange, with its read state; no
Exchange item without a store message. A case holds when its invariant is true and stays true on
every check (each second) for ${STABLE_MS / 1000} s, longer than the longest fault (the 12 s stall).
Further cases run in \`npm test\`: a crash after every write step for voicemail, contacts and
calendar (test/e2e/*Crash.test.ts), UIDVALIDITY reset, emptied store (mass-delete guard),
Graph budget exhaustion, lifecycle events, HTTP fuzzing of every endpoint
(test/e2e/httpFuzz.test.ts), hostile MIME. The load test is \`npm run bench -- load\`
(figures in docs/load.md).

| case | injected | checked | result |
|---|---|---|---|
${rows.join("\n")}
`;
fs.mkdirSync(path.join(root, "docs"), { recursive: true });
fs.writeFileSync(path.join(root, "docs", "resilience.md"), doc);
process.stdout.write(`\n${rows.length - failed} of ${rows.length} cases held; docs/resilience.md written\n`);
process.exit(failed ? 1 : 0);
