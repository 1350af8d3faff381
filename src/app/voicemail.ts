/**
 * Runs the voicemail sync for one mailbox link: resolve its endpoint, profile and Exchange
 * folder, open the voice mailbox, run the sync core under the mailbox lease, record the
 * outcome on the link. Its Graph subscriptions are kept by their own upkeep (subscriptions.ts).
 */
import { ConnectorError, ensureConnectorError, isConnectorError } from "../errors.js";
import { isSecure, parseVoiceMessage } from "../formats/voiceMessage.js";
import { playableRecordings } from "../formats/transcode.js";
import { ExchangeVoicemail, type VoicemailItem } from "../graph/voicemail.js";
import type { VoiceMailboxSession } from "../imap/voiceMailbox.js";
import { openLinkedMailbox } from "./storeAccess.js";
import { syncVoicemail, type CopySelector, type VoicemailSyncDeps, type VoicemailSyncReport } from "../sync/voicemailSync.js";
import { decideCopy, toVoicemailItem } from "../sync/voicemailCopy.js";
import type { ExchangeMailboxPort, VoicemailCopy, VoicemailStatePort } from "../sync/ports.js";
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
/** How long a run's store writes are taken for its own when the store pushes them back: the
 *  push fires inside the write, so this only needs to outlast a long run's writes. */
const STORE_ECHO_SECONDS = 120;

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

export async function openVoicemailPorts(deps: Deps, link: MailboxLink): Promise<VoicemailRunPorts> {
  const dir = await deps.directory({ endpointId: link.endpointId, profileId: link.profileId });
  const profile = dir.linkProfile(link);
  dir.endpoint(link.endpointId); // an unknown endpoint fails before Graph is asked anything
  const exchange = new ExchangeVoicemail(deps.graph(link.tenantId), link.userId);
  let folderId = folderIds.get(link.linkId);
  if (!folderId) {
    folderId = await exchange.ensureFolder(profile.exchangeFolder);
    folderIds.set(link.linkId, folderId);
  }
  const fid = folderId;
  const voice = await openLinkedMailbox(deps, link, { folder: "INBOX", maxMessageBytes: dir.maxMessageBytes(link.endpointId), removal: profile.storeDelete.mode === "trash" ? { mode: "trash", folder: profile.storeDelete.folder } : { mode: "expunge" } });
  const exchangeDelete = profile.exchangeDelete;
  let moveTarget: string | undefined;
  return {
    voice,
    profile,
    folderId: fid,
    state: deps.state.voicemailState(link.linkId),
    exchange: {
      changes: (deltaLink) => exchange.changes(fid, deltaLink),
      findBySyncKey: (key) => exchange.findBySyncKey(fid, key),
      create: async (copy) => exchange.create(fid, await exchangeItem(copy, profile)),
      complete: async (id, copy) => {
        const item = await exchangeItem(copy, profile);
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
        const m = await parseVoiceMessage(source);
        const d = decideCopy(m, profile);
        return d.copy ? { copy: true, receivedAt: m.receivedAt } : d;
      } catch (e) {
        const err = ensureConnectorError(e);
        return { copy: false, code: err.code, message: err.message };
      }
    },
  };
}

/**
 * The Exchange item for a stored message: understood (formats/voiceMessage.ts), its recordings
 * made playable in the profile's voiceFormat (formats/transcode.ts; the store keeps the
 * original), then mapped (sync/voicemailCopy.ts). Undecodable audio is a typed item error.
 */
async function exchangeItem(copy: VoicemailCopy, profile: FeatureProfile): Promise<VoicemailItem> {
  const m = await parseVoiceMessage(copy.source, { internalDate: copy.internalDate });
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

async function syncLink(deps: Deps, link: MailboxLink, req: SyncRequest, lease: LeaseGuard): Promise<VoicemailSyncReport> {
  const started = Date.now();
  const log = deps.log.child({ linkId: link.linkId, tenantId: link.tenantId });
  try {
    const ports = await openVoicemailPorts(deps, link);
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
        expectStoreEchoes: (writes) => deps.state.expectStoreEchoes(link.linkId, writes, STORE_ECHO_SECONDS),
      });
    } finally {
      await ports.voice.close();
    }
    const full = isFull(req);
    await deps.state.modifyLink(link.linkId, (l) => ({
      ...l, lastSyncAt: new Date().toISOString(), lastError: undefined, failureStreak: 0, unreadVoice: report.unread, skippedItems: report.skippedTotal,
      // The administrator's permission covered this one run.
      massDeleteAllowed: usedPermission(l.massDeleteAllowed, "voicemail", link),
      // Only a full comparison measures drift: the lamp was wrong for these until now.
      readDriftTotal: (l.readDriftTotal ?? 0) + (full ? report.readDrift : 0),
      // An adoption the administrator asked for was done by this run (unless asked again since).
      adoptRequested: l.adoptRequested === link.adoptRequested ? undefined : l.adoptRequested,
    }));
    const acted = Object.values(report.actions).reduce((a, b) => a + b, 0);
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
