/**
 * Push without a hook: for endpoints with `notify: "idle"`, watchers hold an IMAP IDLE
 * (RFC 2177) connection per linked voice mailbox and enqueue a run when the store reports a
 * change on it: EXISTS (a new message, RFC 3501 section 7.3.1), EXPUNGE / VANISHED (RFC 3501
 * section 7.4.1, RFC 7162 section 3.2.10), FETCH with new flags (section 7.4.2).
 *
 * Serverless shape: the `watchStores` timer (every minute) starts a watcher; it takes a lease
 * on each shard of mailboxes it can get (SHARD_SIZE links of one endpoint) and holds them for
 * a bounded time (holdMs from taking it over, a little over the period between the two watch
 * timers), then releases them; the next
 * timer's watcher waits for a shard lease that is about to end and takes it over. No double
 * watch: a shard is watched only under its lease. No gap: when a watcher stops it records each
 * mailbox's HIGHESTMODSEQ (RFC 7162; UIDNEXT + EXISTS where the store has no CONDSTORE), and
 * the next watcher, once it has SELECTed, compares and enqueues a run for every mailbox that
 * changed in between. A watch that breaks (store restart, dropped connection) reconnects after
 * a jittered delay, so a restart does not bring every connection back at once; connections
 * come from the store's connection budget like every other (src/app/storeAccess.ts). The
 * poll timer stays as the safety net.
 */
import crypto from "node:crypto";
import type { Deps } from "./deps.js";
import type { MailboxLink } from "../state/stateStore.js";
import { isConnectorError } from "../errors.js";
import { requestChangeRun } from "./linkRun.js";
import { openLinkedMailbox } from "./storeAccess.js";
import type { VoiceMailboxSession } from "../imap/voiceMailbox.js";
import { storeAccessState } from "./credentials.js";
import { mirrorsFolder } from "../sync/mirrorFolders.js";

export const SHARD_SIZE = 250;
/** A watched mailbox whose connection broke waits 0.5 s to this long before reconnecting. */
const RECONNECT_JITTER_MS = 5000;
/** A mailbox the watches' budget share had no room for asks again after about this long. */
const OVER_BUDGET_RETRY_MS = 4000;

export interface WatcherOptions {
  /** How long this watcher holds its shards (bounded: serverless). */
  holdMs: number;
  /** How long to wait for a shard whose previous watcher is about to hand over. */
  takeoverWaitMs?: number;
}

export interface WatcherReport {
  shards: number;
  mailboxes: number;
  changesSeen: number;
  caughtUp: number;
  reconnects: number;
  /** Mailboxes left to the poll because the watches' share of the budget was full. */
  overBudget: number;
}

type Mark = string;
const markOf = (s: VoiceMailboxSession): Mark => {
  const m = s.client.mailbox;
  if (!m) return "";
  return m.highestModseq !== undefined ? `m${m.highestModseq}` : `u${m.uidNext}:${m.exists}`;
};

/** Links on endpoints that want IDLE watchers, in shards: `<endpoint>#<n>` -> links. */
export async function watchShards(deps: Deps): Promise<Map<string, MailboxLink[]>> {
  const dir = await deps.directory();
  const idle = new Set(dir.listEndpoints().filter((e) => dir.endpoint(e.id).notify === "idle").map((e) => e.id));
  const links = (await deps.state.listLinks({ state: "enabled" })).filter((l) => idle.has(l.endpointId)).sort((a, b) => a.linkId.localeCompare(b.linkId));
  const shards = new Map<string, MailboxLink[]>();
  for (const endpointId of idle) {
    const mine = links.filter((l) => l.endpointId === endpointId);
    for (let i = 0; i * SHARD_SIZE < mine.length; i++) shards.set(`${endpointId}#${i}`, mine.slice(i * SHARD_SIZE, (i + 1) * SHARD_SIZE));
  }
  return shards;
}

export async function runWatcher(deps: Deps, options: WatcherOptions): Promise<WatcherReport> {
  const report: WatcherReport = { shards: 0, mailboxes: 0, changesSeen: 0, caughtUp: 0, reconnects: 0, overBudget: 0 };
  const shards = await watchShards(deps);
  await Promise.all([...shards].map(async ([shard, links]) => {
    const owner = `${deps.workerId}:watch:${crypto.randomUUID()}`;
    const leaseSeconds = Math.ceil(options.holdMs / 1000) + 30;
    const takeoverBy = Date.now() + (options.takeoverWaitMs ?? 15_000);
    let lease;
    for (;;) {
      try { lease = await deps.state.acquireLease(`watch:${shard}`, owner, leaseSeconds); break; } catch (e) {
        if (!isConnectorError(e, "LEASE_HELD") || Date.now() > takeoverBy) return; // watched by another watcher
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    // Each shard is held for holdMs from when it was taken over.
    const until = Date.now() + options.holdMs;
    report.shards++;
    deps.log.info("watcher.shard.taken", { shard, mailboxes: links.length });
    try {
      await Promise.all(links.map((l) => watchMailbox(deps, l, shard, until, report)));
    } finally {
      await deps.state.releaseLease(lease).catch(() => undefined);
      deps.log.info("watcher.shard.released", { shard });
    }
  }));
  deps.log.info("watcher.done", { ...report });
  return report;
}

/**
 * The kinds a change in a watched INBOX starts: voicemail always; the disaster-recovery mirror
 * (src/app/mirror.ts) too when the link's profile mirrors INBOX to the endpoint's backup, so
 * the backup lags by seconds on a store without a push hook, as with one (src/app/webhooks.ts).
 */
async function kindsOnChange(deps: Deps, link: MailboxLink): Promise<Array<"voicemail" | "mirror">> {
  const dir = await deps.directory({ endpointId: link.endpointId, profileId: link.profileId });
  const mirror = dir.linkProfile(link).mirror;
  return mirror.enabled && dir.backupOf(link.endpointId) && mirrorsFolder(mirror, "INBOX") ? ["voicemail", "mirror"] : ["voicemail"];
}

async function watchMailbox(deps: Deps, link: MailboxLink, shard: string, until: number, report: WatcherReport): Promise<void> {
  const markKey = `watchmark:${link.linkId}`;
  const kinds = await kindsOnChange(deps, link).catch((e: unknown) => { deps.log.warn("watcher.kinds.failed", { linkId: link.linkId, error: e }); return ["voicemail" as const]; });
  const changed = async (why: string) => {
    report.changesSeen++;
    deps.log.info("watcher.change", { linkId: link.linkId, why });
    for (const kind of kinds) {
      await requestChangeRun(deps, { linkId: link.linkId, ...(kind === "voicemail" ? {} : { kind }), reason: "store-change", at: Date.now() }).catch((e: unknown) => deps.log.warn("watcher.enqueue.failed", { linkId: link.linkId, kind, error: e }));
    }
  };
  let first = true;
  let overBudget = false;
  try {
    await watchUntil();
  } finally {
    // Counted once per mailbox that the budget kept from being watched for the whole hold.
    if (overBudget && first) report.overBudget++;
  }
  async function watchUntil(): Promise<void> {
    while (Date.now() < until) {
      let session: VoiceMailboxSession | undefined;
      try {
        session = await openLinkedMailbox(deps, link, { folder: "INBOX", removal: { mode: "expunge" }, watch: true });
        // Listened for at once: imapflow may start IDLE on its own while the mark is read below,
        // and a store that drops that IDLE closes the connection before the watch is set up.
        const client = session.client;
        const closed = new Promise<void>((resolve) => { client.once("close", () => resolve()); if (!client.usable) resolve(); });
        await session.client.mailboxOpen("INBOX");
        if (first) report.mailboxes++;
        // Catch up on what changed while nobody watched (handover or reconnect).
        const before = await storeAccessState(deps).getMark(markKey);
        if (before !== undefined && before !== markOf(session)) { report.caughtUp++; await changed("changed-while-unwatched"); }
        first = false;
        const s = session;
        const onExists = (e: { count: number; prevCount: number }) => { if (e.count !== e.prevCount) void changed("exists"); };
        const onExpunge = () => void changed("expunge");
        const onFlags = () => void changed("flags");
        s.client.on("exists", onExists);
        s.client.on("expunge", onExpunge);
        s.client.on("flags", onFlags);
        // IDLE until the watch ends; imapflow ends each IDLE before servers time it out
        // (RFC 2177: re-issue at least every 29 minutes), and it is issued again here.
        let watching = true;
        const idling = (async () => {
          while (watching && s.client.usable) {
            const started = Date.now();
            await s.client.idle().catch(() => undefined);
            if (Date.now() - started < 200) await new Promise((r) => setTimeout(r, 200)); // never spin
          }
        })();
        await Promise.race([closed, new Promise((r) => setTimeout(r, Math.max(0, until - Date.now())))]);
        watching = false;
        void idling;
        s.client.off("exists", onExists);
        s.client.off("expunge", onExpunge);
        s.client.off("flags", onFlags);
        if (s.client.usable) {
          await storeAccessState(deps).putMark(markKey, markOf(s));
          await s.close();
          return;
        }
        await s.close().catch(() => undefined);
        session = undefined;
      } catch (e) {
        await session?.close().catch(() => undefined);
        deps.log.warn("watcher.mailbox.failed", { linkId: link.linkId, shard, error: e });
        // The watches' share of the store's budget is full (or a run holds the slot for now):
        // the poll covers this mailbox meanwhile, and it asks again after a longer wait.
        if (isConnectorError(e, "IMAP_CONNECTION_LIMIT")) {
          overBudget = true;
          await new Promise((r) => setTimeout(r, Math.min(OVER_BUDGET_RETRY_MS * (0.5 + Math.random()), Math.max(0, until - Date.now()))));
          continue;
        }
      }
      // The store went away or refused: back off with jitter so a restart is not met by a burst.
      report.reconnects++;
      await new Promise((r) => setTimeout(r, 500 + Math.random() * RECONNECT_JITTER_MS));
    }
  }
}
