/**
 * Push without a hook: for endpoints with `notify: "idle"`, watchers hold an IMAP IDLE
 * (RFC 2177) connection per linked voice mailbox and enqueue a run when the store reports a
 * change on it: EXISTS (a new message, RFC 3501 section 7.3.1), EXPUNGE / VANISHED (RFC 3501
 * section 7.4.1, RFC 7162 section 3.2.10), FETCH with new flags (section 7.4.2). Where the
 * store offers NOTIFY (RFC 5465, src/imap/notify.ts) and the profile syncs other folders
 * (contacts, e-mail copies outside INBOX, mirrored folders), the same connection hears of
 * their changes as well; the runs each folder's change starts are the push hook's
 * (src/app/storeChanges.ts).
 *
 * Serverless shape: the `watchStores` timer (every minute) starts a watcher; it takes a lease
 * on each shard of mailboxes it can get (SHARD_SIZE links of one endpoint) and holds them for
 * a bounded time (holdMs from taking it over, a little over the period between the two watch
 * timers), then releases them; the next
 * timer's watcher waits for a shard lease that is about to end and takes it over. No double
 * watch: a shard is watched only under its lease. No gap: when a watcher stops it records each
 * mailbox's HIGHESTMODSEQ (RFC 7162; UIDNEXT + EXISTS where the store has no CONDSTORE), and
 * each NOTIFY-watched folder's, and the next watcher, once it has SELECTed (and set NOTIFY,
 * whose first STATUS responses give the other folders' state), compares and enqueues the runs
 * of every folder that changed in between. A watch that breaks (store restart, dropped connection) reconnects after
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
import { selectFolder } from "../imap/endpoint.js";
import type { VoiceMailboxSession } from "../imap/voiceMailbox.js";
import { storeAccessState } from "./credentials.js";
import { runsForFolderChange, type StoreChangeKind } from "./storeChanges.js";
import { folderMark, notifyOtherFolders } from "../imap/notify.js";
import type { FeatureProfile } from "../admin/profiles.js";

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

const inboxMark = (s: VoiceMailboxSession): string => {
  const m = s.client.mailbox;
  if (!m) return "";
  return m.highestModseq !== undefined ? `m${m.highestModseq}` : `u${m.uidNext}:${m.exists}`;
};

/** Where a watch left a mailbox: INBOX's mark and, with NOTIFY, each other watched folder's. */
interface Mark { inbox: string; folders: Record<string, string> }
const writeMark = (m: Mark): string => (Object.keys(m.folders).length ? JSON.stringify(m) : m.inbox);
/** Marks written before NOTIFY watches are INBOX's alone. */
function readMark(text: string | undefined): Mark | undefined {
  if (text === undefined) return undefined;
  if (!text.startsWith("{")) return { inbox: text, folders: {} };
  try {
    const m = JSON.parse(text) as Partial<Mark>;
    return { inbox: String(m.inbox ?? ""), folders: typeof m.folders === "object" && m.folders ? m.folders : {} };
  } catch {
    return undefined; // unreadable: nothing to catch up on, as for a first watch
  }
}

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

/** Whether a folder besides INBOX can start a run for this profile: only then is NOTIFY worth setting. */
const watchesOtherFolders = (profile: FeatureProfile, hasBackup: boolean) =>
  profile.contacts.enabled || (profile.emailToPhone.enabled && profile.emailToPhone.storeFolder.toUpperCase() !== "INBOX") || (profile.mirror.enabled && hasBackup);

async function watchMailbox(deps: Deps, link: MailboxLink, shard: string, until: number, report: WatcherReport): Promise<void> {
  const markKey = `watchmark:${link.linkId}`;
  // Without the profile (state unreachable) INBOX's changes still start the voice messages' run.
  const setup = await deps.directory({ endpointId: link.endpointId, profileId: link.profileId })
    .then((dir) => ({ profile: dir.linkProfile(link), hasBackup: !!dir.backupOf(link.endpointId) }))
    .catch((e: unknown) => { deps.log.warn("watcher.profile.failed", { linkId: link.linkId, error: e }); return undefined; });
  const kindsOf = (folder: string): StoreChangeKind[] => (setup ? runsForFolderChange(setup.profile, setup.hasBackup, folder) : folder.toUpperCase() === "INBOX" ? ["voicemail"] : []);
  const changed = async (why: string, kinds: StoreChangeKind[]) => {
    report.changesSeen++;
    deps.log.info("watcher.change", { linkId: link.linkId, why, kinds });
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
        await selectFolder(session.client, "INBOX");
        if (first) report.mailboxes++;
        // The other folders' state as NOTIFY's first STATUS responses give it, then their changes.
        const folders: Record<string, string> = {};
        let settingUp = true;
        if (setup && watchesOtherFolders(setup.profile, setup.hasBackup)) {
          await notifyOtherFolders(session.client, (folder, status) => {
            const kinds = folder.toUpperCase() === "INBOX" ? [] : kindsOf(folder);
            if (!kinds.length) return;
            folders[folder] = folderMark(status);
            if (!settingUp) void changed(`status ${folder}`, kinds);
          });
        }
        settingUp = false;
        // Catch up on what changed while nobody watched (handover or reconnect).
        const before = readMark(await storeAccessState(deps).getMark(markKey));
        if (before) {
          const missed = new Set<StoreChangeKind>();
          if (before.inbox !== inboxMark(session)) for (const k of kindsOf("INBOX")) missed.add(k);
          // A folder the last watch did not see (no NOTIFY then, or new) has nothing to compare.
          for (const [folder, mark] of Object.entries(folders)) if (before.folders[folder] !== undefined && before.folders[folder] !== mark) for (const k of kindsOf(folder)) missed.add(k);
          if (missed.size) { report.caughtUp++; await changed("changed-while-unwatched", [...missed]); }
        }
        first = false;
        const s = session;
        const inboxKinds = kindsOf("INBOX");
        const onExists = (e: { count: number; prevCount: number }) => { if (e.count !== e.prevCount) void changed("exists", inboxKinds); };
        const onExpunge = () => void changed("expunge", inboxKinds);
        const onFlags = () => void changed("flags", inboxKinds);
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
          await storeAccessState(deps).putMark(markKey, writeMark({ inbox: inboxMark(s), folders }));
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
