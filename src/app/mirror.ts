/**
 * The disaster-recovery mirror of one mailbox link (docs/mirror.md): every mirrored folder of
 * the link's voice mailbox on its endpoint (production) copied one way to the same mailbox and
 * folder on the endpoint's backup. Runs of kind "mirror" come from the same triggers as
 * voicemail (the store's push for any mirrored folder, the poll); the hourly reconcile's mirror
 * run is the full verify (both folders listed and compared).
 *
 * Production is opened as every run opens a store (the link's credential, lockout gate,
 * connection budget: src/app/storeAccess.ts); the backup with its endpoint's own super user (a
 * link's own password belongs to production), under a pseudo link id so the gate and budget
 * count the backup's logins apart.
 */
import { ConnectorError, ensureConnectorError } from "../errors.js";
import type { Logger } from "../log.js";
import type { MailboxLink } from "../state/stateStore.js";
import { mirrorSource, mirrorTarget, probeClock } from "../imap/mirrorFolder.js";
import type { VoiceMailboxSession } from "../imap/voiceMailbox.js";
import { mirroredFolders } from "../sync/mirrorFolders.js";
import { syncMirror, type MirrorSyncReport } from "../sync/mirrorSync.js";
import { gateWrites, leaseHooks, type WriteHooks } from "../sync/writeGate.js";
import { MIRROR_WRITE_METHODS } from "../sync/mirrorPorts.js";
import type { Deps } from "./deps.js";
import { recordKindOutcome } from "./kindStatus.js";
import { isFullRun, runKeyOf, runLinkUnderLease, type LinkRunResult } from "./linkRun.js";
import { openLinkedMailbox } from "./storeAccess.js";
import type { SyncRequest } from "./syncQueue.js";

export interface MirrorRunReport {
  folders: Record<string, MirrorSyncReport>;
  /** The run's time was up: copies (or whole folders) are left for a follow-up run. */
  unfinished?: boolean;
}

export async function runMirrorRequest(deps: Deps, req: SyncRequest): Promise<LinkRunResult<MirrorRunReport | undefined>> {
  return runLinkUnderLease(deps, req, "mirror", async (link, log, lease) => {
    const out = await mirrorLink(deps, link, { mode: isFullRun(req) ? "verify" : "incremental", log, hooks: leaseHooks(lease), timeUp: () => lease.timeUp() });
    // Time was up: a follow-up run goes on (enqueued when the lease is released).
    if (out?.unfinished) await deps.state.requestRun(runKeyOf(link.linkId, "mirror"), false);
    return out;
  });
}

/** The backup side's pseudo link (gate, budget and protocol trace keys). */
export const backupLinkOf = (link: Pick<MailboxLink, "linkId" | "voiceMailbox">, endpointId: string) => ({ linkId: `${link.linkId}~backup`, endpointId, voiceMailbox: link.voiceMailbox });

export interface MirrorSessions { production: VoiceMailboxSession; backup: VoiceMailboxSession; backupId: string; folders: string[]; close(): Promise<void> }

/** Opens both stores for a link and lists the folders its profile mirrors. */
export async function openMirror(deps: Deps, link: MailboxLink): Promise<MirrorSessions | undefined> {
  const dir = await deps.directory({ endpointId: link.endpointId, profileId: link.profileId });
  const profile = dir.linkProfile(link);
  if (!profile.mirror.enabled) return undefined;
  const backupId = dir.backupOf(link.endpointId);
  if (!backupId) throw new ConnectorError("CONFIG_INVALID", `profile ${profile.id} mirrors mailboxes, but endpoint ${link.endpointId} names no backup (endpoint backup.endpointId)`, { endpoint: link.endpointId, mailboxId: link.linkId, transient: false });
  // Both stores are opened at once (two logins' round trips, not one after the other); when
  // one fails, the other is closed again.
  const [p, b] = await Promise.allSettled([
    openLinkedMailbox(deps, link, { folder: "INBOX", removal: { mode: "expunge" } }),
    openLinkedMailbox(deps, backupLinkOf(link, backupId), { folder: "INBOX", removal: { mode: "expunge" } }),
  ]);
  if (p.status === "rejected" || b.status === "rejected") {
    await Promise.allSettled([p, b].flatMap((x) => (x.status === "fulfilled" ? [x.value.close()] : [])));
    throw p.status === "rejected" ? p.reason : (b as PromiseRejectedResult).reason;
  }
  const production: VoiceMailboxSession = p.value;
  const backup: VoiceMailboxSession = b.value;
  const close = async () => { await Promise.allSettled([production.close(), backup.close()]); };
  try {
    // LIST (RFC 3501 section 6.3.8): greetings and recorded-name folders where the store exposes them.
    const listed = (await production.client.list()).filter((b) => !b.flags?.has("\\Noselect")).map((b) => b.path);
    return { production, backup, backupId, folders: mirroredFolders(profile.mirror, listed), close };
  } catch (e) {
    await close();
    throw e;
  }
}

export async function mirrorLink(deps: Deps, link: MailboxLink, o: { mode: "incremental" | "verify"; log: Logger; hooks?: WriteHooks; timeUp?: () => boolean }): Promise<MirrorRunReport | undefined> {
  const started = Date.now();
  try {
    const s = await openMirror(deps, link);
    if (!s) return undefined;
    const dir = await deps.directory({ endpointId: link.endpointId, profileId: link.profileId });
    const profile = dir.linkProfile(link);
    const out: MirrorRunReport = { folders: {} };
    const hooks = o.hooks ?? {};
    let skew: Record<string, number> | undefined;
    // Extra backup connections for the copies (src/sync/mirrorSync.ts lanes), opened by the
    // first folder with more than one batch to copy and kept for the run's other folders.
    const lanes = new Map<number, Promise<VoiceMailboxSession>>();
    const laneSession = (i: number) => {
      let open = lanes.get(i);
      if (!open) {
        open = openLinkedMailbox(deps, backupLinkOf(link, s.backupId), { folder: "INBOX", removal: { mode: "expunge" } }, { waitForBudget: false });
        open.catch(() => lanes.delete(i));
        lanes.set(i, open);
      }
      return open;
    };
    try {
      // Both stores' clocks (point 4 of issue 21), with the full verify and on a link's first run:
      // the voice systems age and order messages by their dates, so a backup whose clock is off
      // plays them in another order after a failover. A probe that fails is no reason to stop.
      if (o.mode === "verify" || !link.kinds?.mirror?.skew) {
        const found: Record<string, number> = {};
        // Each store on its own connection: both probes at once.
        await Promise.all(([[link.endpointId, s.production], [s.backupId, s.backup]] as const).map(async ([id, session]) => {
          try { found[id] = await probeClock(session.client, id); } catch (e) { o.log.warn("mirror.clock.failed", { endpoint: id, error: e }); }
        }));
        skew = found;
      }
      for (const folder of s.folders) {
        if (out.unfinished || (Object.keys(out.folders).length && o.timeUp?.())) { out.unfinished = true; break; }
        const report = await syncMirror({
          source: mirrorSource(s.production.client, link.endpointId, folder),
          target: gateWrites(mirrorTarget(s.backup.client, s.backupId, folder), MIRROR_WRITE_METHODS.target, "backup", hooks),
          state: gateWrites(deps.state.mirrorState(link.linkId, folder), MIRROR_WRITE_METHODS.state, "state", hooks),
          limits: { massDeleteMaxShare: profile.massDelete.maxShare ?? deps.config.sync.massDeleteMaxShare },
          mode: o.mode,
          batch: deps.config.mirror.batch,
          log: o.log.child({ folder }),
          timeUp: o.timeUp,
          lanes: deps.config.mirror.appendConnections,
          appendLane: async (i) => gateWrites(mirrorTarget((await laneSession(i)).client, s.backupId, folder), MIRROR_WRITE_METHODS.target, "backup", hooks),
        });
        out.folders[folder] = report;
        if (report.unfinished) out.unfinished = true;
        if (report.mode === "full") await deps.state.compactMirror(link.linkId, folder).catch(() => undefined);
      }
    } finally {
      await Promise.allSettled([s.close(), ...[...lanes.values()].map(async (l) => (await l).close())]);
    }
    const reports = Object.values(out.folders);
    const sum = (f: (r: MirrorSyncReport) => number) => reports.reduce((a, r) => a + f(r), 0);
    const backlog = sum((r) => r.backlog);
    const refused = reports.flatMap((r) => r.refused);
    const massDelete = reports.find((r) => r.massDelete)?.massDelete;
    await recordKindOutcome(deps, link.linkId, "mirror", (k) => ({
      ...k, lastError: massDelete ? { code: "MASS_DELETE_REFUSED", message: `the mirror held back ${massDelete.deletes} of ${massDelete.known} deletes on the backup (${massDelete.pattern})`, at: new Date().toISOString() } : undefined,
      items: backlog, skipped: refused.length, ...(skew ? { skew, skewAt: new Date().toISOString() } : {}),
    }), true, link);
    if (sum((r) => r.copied + r.flagsSet + r.expunged + r.rematched) || refused.length || o.mode === "verify") {
      o.log.info(out.unfinished ? "mirror.sync.continues" : "mirror.sync.done", { mode: o.mode, folders: s.folders.length, copied: sum((r) => r.copied), flagsSet: sum((r) => r.flagsSet), expunged: sum((r) => r.expunged), rematched: sum((r) => r.rematched), refused: refused.length, backlog, extra: sum((r) => r.extra), ms: Date.now() - started });
    }
    return out;
  } catch (e) {
    const err = ensureConnectorError(e, "INTERNAL", { mailboxId: link.linkId, tenantId: link.tenantId });
    await recordKindOutcome(deps, link.linkId, "mirror", (k) => ({ ...k, lastError: { code: err.code, message: err.message, at: new Date().toISOString() } }), false).catch(() => undefined);
    o.log.error("mirror.sync.failed", { error: err });
    throw err;
  }
}
