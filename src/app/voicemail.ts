/**
 * Runs the voicemail sync for one mailbox link: resolve its endpoint, profile and Exchange
 * folder, open the voice mailbox, run the sync core under the mailbox lease, record the
 * outcome on the link. Its Graph subscriptions are kept by their own upkeep (subscriptions.ts).
 */
import { ConnectorError, ensureConnectorError, isConnectorError } from "../errors.js";
import { isSecure, parseVoiceMessage, type VoiceMessage } from "../formats/voiceMessage.js";
import { playableRecordings } from "../formats/transcode.js";
import { ExchangeVoicemail, type VoicemailItem } from "../graph/voicemail.js";
import type { VoiceMailboxSession } from "../imap/voiceMailbox.js";
import { openLinkedMailbox } from "./storeAccess.js";
import { emptyCounts, syncVoicemail, type CopySelector, type VoicemailSyncDeps, type VoicemailSyncReport } from "../sync/voicemailSync.js";
import { decideCopy, toVoicemailItem } from "../sync/voicemailCopy.js";
import type { ExchangeChanges, ExchangeMailboxPort, VoicemailCopy, VoicemailStatePort } from "../sync/ports.js";
import type { FeatureProfile } from "../admin/profiles.js";
import type { MailboxLink } from "../state/stateStore.js";
import type { Deps } from "./deps.js";
import { enqueueSync, type SyncRequest } from "./syncQueue.js";
import { isFullRun, runLinkUnderLease, type LinkRunResult } from "./linkRun.js";
import { usedPermission } from "./kindStatus.js";
import type { LeaseGuard } from "../sync/mailboxRun.js";
import { gateVoicemailPorts, leaseHooks } from "../sync/writeGate.js";
import { guardLimits } from "./guardLimits.js";
import { markUserGone } from "./userLifecycle.js";

const folderIds = new Map<string, string>();

const isFull = isFullRun;

export type RunResult = LinkRunResult<VoicemailSyncReport>;

export async function runSyncRequest(deps: Deps, req: SyncRequest): Promise<RunResult> {
  return runLinkUnderLease(deps, req, "voicemail", (link, _log, lease) => syncLink(deps, link, req, lease));
}

/** The ports of one link's sync run, bound to its endpoint, profile and Exchange folder. */
export interface VoicemailRunPorts {
  voice: VoiceMailboxSession;
  exchange: ExchangeMailboxPort;
  state: VoicemailStatePort;
  select: CopySelector;
  profile: FeatureProfile;
  folderId: string;
}

/** The Exchange side of a link's run: its profile, the Graph client and the voicemail folder. */
async function exchangeSide(deps: Deps, link: MailboxLink) {
  const dir = await deps.directory({ endpointId: link.endpointId, profileId: link.profileId });
  const profile = dir.linkProfile(link);
  dir.endpoint(link.endpointId); // an unknown endpoint fails before Graph is asked anything
  const exchange = new ExchangeVoicemail(deps.graph(link.tenantId), link.userId);
  let folderId = folderIds.get(link.linkId);
  if (!folderId) {
    folderId = await exchange.ensureFolder(profile.exchangeFolder);
    folderIds.set(link.linkId, folderId);
  }
  return { dir, profile, exchange, folderId };
}

/**
 * A delta round read already (by the fast read check) answers the run's first request when it
 * asks for the same deltaLink: read again, the same round would cost another request.
 */
function readOnce(pre: { deltaLink: string; read: ExchangeChanges } | undefined, read: (deltaLink: string | undefined) => Promise<ExchangeChanges>) {
  let left = pre;
  return (deltaLink: string | undefined): Promise<ExchangeChanges> => {
    const mine = left && deltaLink === left.deltaLink ? left.read : undefined;
    left = undefined;
    return mine ? Promise.resolve(mine) : read(deltaLink);
  };
}

export async function openVoicemailPorts(deps: Deps, link: MailboxLink, side?: Awaited<ReturnType<typeof exchangeSide>>, readAlready?: { deltaLink: string; read: ExchangeChanges }): Promise<VoicemailRunPorts> {
  const { dir, profile, exchange, folderId: fid } = side ?? await exchangeSide(deps, link);
  const voice = await openLinkedMailbox(deps, link, { folder: "INBOX", maxMessageBytes: dir.maxMessageBytes(link.endpointId), removal: profile.storeDelete.mode === "trash" ? { mode: "trash", folder: profile.storeDelete.folder } : { mode: "expunge" } });
  const exchangeDelete = profile.exchangeDelete;
  let moveTarget: string | undefined;
  // The executor hands the same source to select and then to create: parsed once (a backfill
  // of thousands of messages parsed each twice). Weak, so a run holds no source longer than its action.
  const parsed = new WeakMap<Buffer, Promise<VoiceMessage>>();
  const parse = (source: Buffer, internalDate?: Date) => {
    if (internalDate) return parseVoiceMessage(source, { internalDate });
    let p = parsed.get(source);
    if (!p) parsed.set(source, (p = parseVoiceMessage(source)));
    return p;
  };
  return {
    voice,
    profile,
    folderId: fid,
    state: deps.state.voicemailState(link.linkId),
    exchange: {
      changes: readOnce(readAlready, (deltaLink) => exchange.changes(fid, deltaLink)),
      findBySyncKey: (key) => exchange.findBySyncKey(fid, key),
      create: async (copy) => exchange.create(fid, await exchangeItem(copy, profile, parse)),
      complete: async (id, copy) => {
        const item = await exchangeItem(copy, profile, parse);
        if (item.attachments.length) await exchange.uploadAttachments(id, item.attachments);
      },
      setRead: (id, isRead) => exchange.setRead(id, isRead),
      remove: async (id) => {
        if (exchangeDelete === "hardDelete") return exchange.hardDelete(id);
        if (typeof exchangeDelete === "object") return exchange.move(id, moveTarget ??= await exchange.ensureFolder(exchangeDelete.folder));
        return exchange.moveToDeletedItems(id);
      },
      locate: (ids) => exchange.locate(fid, ids),
      adopt: (id, key, isRead) => exchange.adopt(id, key, isRead),
    },
    select: async (source) => {
      try {
        const m = await parse(source);
        const d = decideCopy(m, profile);
        return d.copy ? { copy: true, receivedAt: m.receivedAt } : d;
      } catch (e) {
        const err = ensureConnectorError(e);
        return { copy: false, code: err.code, message: err.message };
      }
    },
  };
}

/** The report of a fast read check that found nothing new in Outlook (nothing read, nothing written). */
function quietReport(unread: number): VoicemailSyncReport {
  return { actions: emptyCounts(), skipped: 0, imapFull: false, graphFull: false, deltaExpired: false, uidValidityChanged: false, movedAway: 0, readDrift: 0, unread, skippedTotal: 0, corrupt: 0, itemsRead: 0 };
}

/**
 * The Exchange item for a stored message: understood (formats/voiceMessage.ts), its recordings
 * made playable in the profile's voiceFormat (formats/transcode.ts; the store keeps the
 * original), then mapped (sync/voicemailCopy.ts). Undecodable audio is a typed item error.
 */
async function exchangeItem(copy: VoicemailCopy, profile: FeatureProfile, parse: (source: Buffer, internalDate?: Date) => Promise<VoiceMessage>): Promise<VoicemailItem> {
  const m = await parse(copy.source, copy.internalDate);
  const recordings = m.class === "voice" && !isSecure(m) ? await playableRecordings(m.recordings, profile.voiceFormat) : [];
  return toVoicemailItem(m, copy.syncKey, copy.seen, recordings);
}

/** Adoption of other products' voicemails: caller, duration and time read by the voice-message parser. */
export function adoptionPorts(deps: Deps, link: MailboxLink): NonNullable<VoicemailSyncDeps["adoption"]> {
  return {
    requested: link.adoptRequested !== undefined,
    describe: async (source) => {
      const m = await parseVoiceMessage(source);
      return { callerNumber: m.caller.number, durationSeconds: m.durationSeconds, receivedAt: m.receivedAt };
    },
    ambiguous: (a) => deps.state.putConflict(link.linkId, {
      syncKey: a.syncKey, at: new Date().toISOString(), kind: "voicemail-match", loser: "none",
      content: JSON.stringify({ imapUid: a.uid, candidates: a.candidates, reason: a.reason }),
      summary: `voice message UID ${a.uid}: ${a.reason}; copied, nothing merged`,
    }),
  };
}

/**
 * The fast read check exists for one thing: a read or delete in Outlook reaching the store (the
 * phone's lamp) when Graph's notification is late or lost. When the folder's delta has nothing
 * new, such a run has nothing to carry: it ends without logging in to the store (the store's
 * own changes come by its push, an IDLE watch or the poll) and writes nothing, so a check
 * costs one delta request and the lease (issue #19: cost follows changes). Only on whole
 * incremental state (a healthy link, cursors with counts that are not stale); otherwise, or
 * when the delta has something, the run goes on with the changes already read.
 */
async function quietFastRead(deps: Deps, link: MailboxLink, side: Awaited<ReturnType<typeof exchangeSide>>): Promise<{ quiet: true; unread: number } | { quiet: false; changes?: { deltaLink: string; read: ExchangeChanges } }> {
  if (link.lastError) return { quiet: false };
  const cursors = await deps.state.voicemailState(link.linkId).loadCursors();
  if (!cursors.deltaLink || !cursors.imap || !cursors.counts || cursors.countsStale) return { quiet: false };
  let read: ExchangeChanges;
  try {
    read = await side.exchange.changes(side.folderId, cursors.deltaLink);
  } catch (e) {
    if (isConnectorError(e, "DELTA_TOKEN_EXPIRED")) return { quiet: false }; // the run re-matches
    throw e;
  }
  if (!read.full && !read.upserted.length && !read.removed.length) return { quiet: true, unread: cursors.counts.unread };
  return { quiet: false, changes: { deltaLink: cursors.deltaLink, read } };
}

async function syncLink(deps: Deps, link: MailboxLink, req: SyncRequest, lease: LeaseGuard): Promise<VoicemailSyncReport> {
  const started = Date.now();
  const log = deps.log.child({ linkId: link.linkId, tenantId: link.tenantId });
  try {
    const side = await exchangeSide(deps, link);
    const fast = req.reason === "fast-read" && !isFull(req) ? await quietFastRead(deps, link, side) : { quiet: false as const };
    if (fast.quiet) return quietReport(fast.unread);
    // The delta the check read is the run's.
    const ports = await openVoicemailPorts(deps, link, side, fast.changes);
    let report: VoicemailSyncReport;
    try {
      report = await syncVoicemail({
        ...gateVoicemailPorts(ports, leaseHooks(lease)), log,
        limits: {
          ...guardLimits(deps, ports.profile, link, "voicemail"),
          agingMinDays: ports.profile.massDelete.agingMinDays,
          propagate: { deleteOnStore: ports.profile.storeDelete.mode !== "never", deleteInExchange: ports.profile.exchangeDelete !== "never" },
        },
        outlookDelete: { deletedItemsIsDelete: ports.profile.outlookDelete.trigger === "deletedItems", goneFromMailbox: ports.profile.outlookDelete.goneFromMailbox },
        ids: { tenantId: link.tenantId, mailboxId: link.linkId },
        mode: isFull(req) ? "full" : "incremental",
        adoption: adoptionPorts(deps, link),
        expectEchoes: (writes) => deps.state.expectEchoes(link.linkId, writes),
        timeUp: () => lease.timeUp(),
      });
    } finally {
      await ports.voice.close();
    }
    if (report.unfinished) {
      // The run's time was up: a follow-up run goes on where it stopped (enqueued when this run
      // releases its lease, src/sync/mailboxRun.ts). The link keeps its last complete sync time.
      await deps.state.requestRun(link.linkId, false);
      log.info("voicemail.sync.continues", { reason: req.reason, ...report.actions, unfinished: report.unfinished, ms: Date.now() - started });
      return report;
    }
    const full = isFull(req);
    const acted = Object.values(report.actions).reduce((a, b) => a + b, 0);
    const now = Math.floor(Date.now() / 1000);
    await deps.state.modifyLink(link.linkId, (l) => ({
      ...l, lastSyncAt: new Date().toISOString(), lastError: undefined, failureStreak: 0, unreadVoice: report.unread, skippedItems: report.skippedTotal,
      // A change (a deposit, a read on either side) opens the fast read check's window again.
      fastUntil: acted || l.fastUntil === undefined ? now + deps.config.sync.fastReadWindowSeconds : l.fastUntil,
      // The administrator's permission covered this one run.
      massDeleteAllowed: usedPermission(l.massDeleteAllowed, "voicemail", link),
      // Only a full comparison measures drift: the lamp was wrong for these until now.
      readDriftTotal: (l.readDriftTotal ?? 0) + (full ? report.readDrift : 0),
      // An adoption the administrator asked for was done by this run (unless asked again since).
      adoptRequested: l.adoptRequested === link.adoptRequested ? undefined : l.adoptRequested,
    }));
    if (acted || report.skipped) log.info("voicemail.sync.done", { reason: req.reason, ...report.actions, skipped: report.skipped, readDrift: report.readDrift, itemsRead: report.itemsRead, corrupt: report.corrupt || undefined, ms: Date.now() - started, triggerLagMs: req.at ? Date.now() - req.at : undefined });
    return report;
  } catch (e) {
    const err = ensureConnectorError(e, "INTERNAL", { mailboxId: link.linkId, tenantId: link.tenantId });
    await deps.state.modifyLink(link.linkId, (l) => ({ ...l, lastError: { code: err.code, message: err.message, at: new Date().toISOString() }, failureStreak: (l.failureStreak ?? 0) + 1 })).catch(() => undefined);
    log.error("voicemail.sync.failed", { error: err });
    if (err.code === "UNKNOWN_USER") await markUserGone(deps, link, err);
    throw err;
  }
}
