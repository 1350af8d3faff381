/**
 * Timer-driven work. Each timer only enqueues sync requests; the worker does the work under
 * the mailbox lease, so overlapping triggers coalesce.
 *  - poll: every enabled link's store, by a login and STATUS per watched folder in the shard
 *    (src/app/storePoll.ts); a run only for the kinds whose folder changed since their last run;
 *  - fast-read: only links with unread voice messages, so the cost is proportional to them
 *    (one delta request per check, far inside the 10,000 requests per 10 minutes budget), and
 *    links whose Graph subscription is refused or failing (polled at this interval, for the
 *    kinds without a working subscription, until the upkeep gets one again);
 *  - reconcile: every enabled link, full comparison.
 * Contacts ride along with poll and reconcile when the link's profile syncs them; the calendar
 * (one-way from Exchange, so notifications cover it) with reconcile, which also slides its
 * window once a day and re-checks the UC location.
 *
 * Fan-out that scales out: a timer invocation lists no link. It enqueues one "schedule"
 * message per shard (UMC_SCHEDULE_SHARDS, default 16); the worker that takes a shard's message
 * lists only the links whose bucket (src/state/links.ts, a hash of the link id) falls in the
 * shard's range, and enqueues their runs. So at 100,000 links no invocation touches more than
 * 1/N of them (`npm run bench -- fanout`). The fast read check lists the fast-check rows (links
 * with unread voicemail or without a working subscription), not the links.
 */
import type { MailboxLink } from "../state/stateStore.js";
import { LINK_BUCKETS, needsFastCheck } from "../state/links.js";
import { enqueueSubscriptionUpkeep } from "./subscriptions.js";
import type { Deps } from "./deps.js";
import { enqueueSync, type SyncKind, type SyncRequest } from "./syncQueue.js";
import { QUEUED_MARK_SECONDS, runKeyOf } from "./linkRun.js";
import { checkStore } from "./storePoll.js";
import { Semaphore } from "../semaphore.js";

/** Enqueues one run per kind the link's profile syncs (voicemail always). Returns how many. */
export async function enqueueLinkKinds(deps: Deps, link: Pick<MailboxLink, "linkId" | "profileId" | "profileOverride">, reason: SyncRequest["reason"], kinds: SyncKind[] = ["voicemail", "contacts", "calendar", "subscriptions", "mail", "mirror"]): Promise<number> {
  const at = Date.now();
  let n = 0;
  if (kinds.includes("voicemail")) { await enqueueSync(deps.syncQueue, { linkId: link.linkId, reason, at }); n++; }
  let profile;
  try { profile = (await deps.directory()).linkProfile(link); } catch { return n; } // the voicemail run reports it on the link
  if (profile.contacts.enabled && kinds.includes("contacts")) { await enqueueSync(deps.syncQueue, { linkId: link.linkId, kind: "contacts", reason, at }); n++; }
  if (profile.calendar.enabled && kinds.includes("calendar")) { await enqueueSync(deps.syncQueue, { linkId: link.linkId, kind: "calendar", reason, at }); n++; }
  // E-mail on the phone rides along wherever contacts do (poll, reconcile, a new link).
  if (profile.emailToPhone.enabled && kinds.includes("mail")) { await enqueueSync(deps.syncQueue, { linkId: link.linkId, kind: "mail", reason, at }); n++; }
  // The disaster-recovery mirror (src/app/mirror.ts): a reconcile run of it is its full verify.
  if (profile.mirror.enabled && kinds.includes("mirror")) { await enqueueSync(deps.syncQueue, { linkId: link.linkId, kind: "mirror", reason, at }); n++; }
  // A new link (or an administrator's run) also gets its subscriptions, in a run of their own;
  // the hourly reconcile checks them with Graph (one lost without a lifecycle event is recreated).
  if ((reason === "admin" || reason === "reconcile") && kinds.includes("subscriptions")) await enqueueSync(deps.syncQueue, { linkId: link.linkId, kind: "subscriptions", reason, at });
  return n;
}

const lastFastRead = new Map<string, number>();
/** The fast read check's timer period (functions/timers.ts fastReadCheck). */
const FAST_TIMER_SECONDS = 5;

/**
 * The links one shard's fast check takes this tick: at most its share of
 * UMC_FAST_READ_MAX_PER_SECOND, those checked longest ago first, so a burst across every
 * mailbox (each holding unread voicemail, each in its window) is a bounded cost that reaches
 * every link in turn instead of hundreds of runs a second.
 */
export function pickFastLinks<T extends { linkId: string }>(candidates: T[], lastChecked: ReadonlyMap<string, number>, budget: number): T[] {
  return [...candidates].sort((a, b) => (lastChecked.get(a.linkId) ?? 0) - (lastChecked.get(b.linkId) ?? 0)).slice(0, Math.max(0, budget));
}
/** The poll timer fires every minute; a run younger than this made the poll's check itself. */
const POLL_SKIP_MS = 55_000;

/** The kind ran successfully within `ms`: it has just made the check a timer would ask for. A
 *  failed run (its error stays on the link until a run succeeds) checked nothing. */
const ranWithin = (k: { lastSyncAt?: string; lastError?: unknown } | undefined, ms: number, now: number) =>
  !!k?.lastSyncAt && !k.lastError && now - Date.parse(k.lastSyncAt) < ms;

export type ScheduleReason = Extract<SyncRequest["reason"], "poll" | "fast-read" | "reconcile" | "renewals">;

/** The bucket range [from, to) of shard `shard` of `shards`. */
export function shardBuckets(shard: number, shards: number): [number, number] {
  return [Math.floor((shard * LINK_BUCKETS) / shards), Math.floor(((shard + 1) * LINK_BUCKETS) / shards)];
}

/** A timer's work: one queue message per shard (no link is read here). Returns how many. */
export async function fanOutSchedule(deps: Deps, reason: ScheduleReason): Promise<number> {
  // Link rows written before buckets existed get theirs once (the only invocation that lists every link).
  await deps.state.backfillScheduleRows();
  const shards = deps.config.sync.scheduleShards;
  const at = Date.now();
  for (let shard = 0; shard < shards; shard++) await enqueueSync(deps.syncQueue, { linkId: `shard-${shard}-of-${shards}`, kind: "schedule", reason, shard, shards, at });
  return shards;
}

/** One shard's work (the worker's side of the fan-out): the runs of the links in its buckets. */
export async function runScheduleShard(deps: Deps, req: SyncRequest): Promise<{ status: "ran"; report: { links: number; enqueued: number } }> {
  const reason = req.reason as ScheduleReason;
  const buckets = shardBuckets(req.shard ?? 0, req.shards ?? 1);
  if (reason === "renewals") {
    const r = await enqueueSubscriptionUpkeep(deps, Date.now(), buckets);
    return { status: "ran", report: r };
  }
  return { status: "ran", report: await enqueueLinks(deps, reason, buckets) };
}

/** The fast-check rows of a bucket range, as links (a stale row, whose link no longer needs the check, is read past). */
async function fastLinks(deps: Deps, buckets: [number, number]): Promise<MailboxLink[]> {
  const out: MailboxLink[] = [];
  for (const id of await deps.state.listFastLinks(buckets)) {
    const l = await deps.state.getLink(id);
    if (l && needsFastCheck(l)) out.push(l);
  }
  return out;
}

export async function enqueueLinks(deps: Deps, reason: Extract<SyncRequest["reason"], "poll" | "fast-read" | "reconcile">, buckets: [number, number] = [0, LINK_BUCKETS]): Promise<{ links: number; enqueued: number }> {
  if (reason === "fast-read") return enqueueFastReads(deps, await fastLinks(deps, buckets));
  const links = await deps.state.listLinks({ state: "enabled", buckets });
  if (reason === "poll") return pollLinks(deps, links);
  let n = 0;
  for (const l of links) n += await enqueueLinkKinds(deps, l, reason, ["voicemail", "contacts", "calendar", "subscriptions", "mail", "mirror"]);
  return { links: links.length, enqueued: n };
}

/** Store checks of one shard's poll in flight at once (each one login; the endpoint's connection budget applies too). */
const POLL_CHECKS_AT_ONCE = 4;

/** The poll of one shard's links: a run for each kind whose store changed (src/app/storePoll.ts). */
async function pollLinks(deps: Deps, links: MailboxLink[]): Promise<{ links: number; enqueued: number; asked: number }> {
  const started = Date.now();
  let n = 0;
  let asked = 0;
  const slots = new Semaphore(POLL_CHECKS_AT_ONCE);
  const unreachable = new Set<string>();
  await Promise.all(links.map((l) => slots.run(async () => {
    // During bursts every busy link just ran: its run made the check.
    const due = (["voicemail", "contacts", "mail", "mirror"] as const).filter((k) => !ranWithin(k === "voicemail" ? l : l.kinds?.[k], POLL_SKIP_MS, Date.now()));
    if (!due.length) return;
    const check = await checkStore(deps, l, due, unreachable);
    if (check.asked) asked++;
    // A kind whose run is still waiting in the queue (a change's, or the last tick's) needs no
    // second one: it will make the check when it runs. Without this mark, workers that fell
    // behind got one more run per link every minute (1,000 links: the queue outgrew the runs
    // it could make, and changes waited behind the poll's runs; docs/load.md).
    const kinds: SyncKind[] = [];
    for (const k of check.run) if (await deps.state.markQueued(runKeyOf(l.linkId, k), QUEUED_MARK_SECONDS)) kinds.push(k);
    if (kinds.length) n += await enqueueLinkKinds(deps, l, "poll", kinds);
    // The lamp: unread voicemail on a quiet store may have been read in Outlook with the
    // notification lost. The fast read's check looks (one delta, no store login; src/app/voicemail.ts),
    // once the link is past its fast window (within it, the fast read timer checks it more often).
    if (due.includes("voicemail") && !check.run.includes("voicemail") && !check.notThisMinute && l.unreadVoice > 0 && !((l.fastUntil ?? 0) * 1000 > Date.now()) && await deps.state.markQueued(runKeyOf(l.linkId, "voicemail"), QUEUED_MARK_SECONDS)) {
      n += await enqueueLinkKinds(deps, l, "fast-read", ["voicemail"]);
    }
  })));
  if (links.length) deps.log[n ? "info" : "debug"]("schedule.poll.done", { links: links.length, asked, enqueued: n, ms: Date.now() - started });
  return { links: links.length, enqueued: n, asked };
}

/** The fast read check of one shard's fast-check links: those due, within the shard's budget. */
async function enqueueFastReads(deps: Deps, links: MailboxLink[]): Promise<{ links: number; enqueued: number }> {
  const now = Date.now();
  // The timer fires every 5 s; the configured interval may be longer. A link that ran within
  // the interval (a notification, a deposit) has just looked at its delta.
  const interval = deps.config.sync.fastReadIntervalSeconds * 1000 - 500;
  const due: Array<{ linkId: string; link: MailboxLink; kinds: SyncKind[] }> = [];
  for (const l of links) {
    if (now - (lastFastRead.get(l.linkId) ?? 0) < interval) continue;
    // Without a working subscription, the kinds it should watch are polled (a refusal never stops sync).
    const unwatched = Object.entries(l.subscriptions ?? {}).filter(([, h]) => h && h.state !== "active").map(([k]) => k);
    const kinds = (["voicemail", "contacts", "calendar", "mail"] as const).filter((k) => (k === "voicemail" && l.unreadVoice > 0) || (l.subscriptionFallback && unwatched.includes(k)))
      .filter((k) => !ranWithin(k === "voicemail" ? l : l.kinds?.[k], interval, now));
    if (kinds.length) due.push({ linkId: l.linkId, link: l, kinds });
  }
  const budget = Math.max(1, Math.floor((deps.config.sync.fastReadMaxPerSecond * FAST_TIMER_SECONDS) / deps.config.sync.scheduleShards));
  const picked = pickFastLinks(due, lastFastRead, budget);
  let n = 0;
  for (const d of picked) {
    lastFastRead.set(d.linkId, now);
    n += await enqueueLinkKinds(deps, d.link, "fast-read", d.kinds);
  }
  if (picked.length < due.length) deps.log.info("schedule.fastRead.deferred", { due: due.length, taken: picked.length, budget });
  return { links: links.length, enqueued: n };
}
