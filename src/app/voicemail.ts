/**
 * Runs the voicemail sync for one mailbox link: resolve its endpoint, profile and Exchange
 * folder, open the voice mailbox, run the sync core under the mailbox lease, record the
 * outcome on the link, and keep its Graph subscription alive.
 */
import { ConnectorError, ensureConnectorError, isConnectorError } from "../errors.js";
import { parseVoiceMessage } from "../formats/voiceMessage.js";
import { ExchangeVoicemail } from "../graph/voicemail.js";
import { openVoiceMailbox, type VoiceMailboxSession } from "../imap/voiceMailbox.js";
import { syncVoicemail, type CopySelector, type VoicemailSyncReport } from "../sync/voicemailSync.js";
import { decideCopy, toVoicemailItem } from "../sync/voicemailCopy.js";
import type { ExchangeMailboxPort, VoicemailStatePort } from "../sync/ports.js";
import type { FeatureProfile } from "../admin/profiles.js";
import { makeClientState } from "../webhooks/clientState.js";
import type { MailboxLink } from "../state/stateStore.js";
import type { Deps } from "./deps.js";
import { enqueueSync, type SyncRequest } from "./syncQueue.js";
import { isFullRun, runLinkUnderLease, type LinkRunResult } from "./linkRun.js";

/** Outlook subscriptions live at most 10,080 minutes; ask for a little less (graph-facts.md section 1). */
export const SUBSCRIPTION_MINUTES = 10_080 - 60;
const folderIds = new Map<string, string>();

const isFull = isFullRun;

export type RunResult = LinkRunResult<VoicemailSyncReport>;

export async function runSyncRequest(deps: Deps, req: SyncRequest): Promise<RunResult> {
  return runLinkUnderLease(deps, req, "voicemail", (link) => syncLink(deps, link, req));
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
  const dir = deps.directory();
  const profile = dir.profile(link.profileId);
  const endpoint = dir.endpoint(link.endpointId);
  const exchange = new ExchangeVoicemail(deps.graph(link.tenantId), link.userId);
  let folderId = folderIds.get(link.linkId);
  if (!folderId) {
    folderId = await exchange.ensureFolder(profile.exchangeFolder);
    folderIds.set(link.linkId, folderId);
  }
  const fid = folderId;
  const voice = await openVoiceMailbox(endpoint, link.voiceMailbox, { folder: "INBOX", removal: profile.storeDelete.mode === "trash" ? { mode: "trash", folder: profile.storeDelete.folder } : { mode: "expunge" } });
  return {
    voice,
    profile,
    folderId: fid,
    state: deps.state.voicemailState(link.linkId),
    exchange: {
      changes: (deltaLink) => exchange.changes(fid, deltaLink),
      findBySyncKey: (key) => exchange.findBySyncKey(fid, key),
      create: async (copy) => exchange.create(fid, toVoicemailItem(await parseVoiceMessage(copy.source), copy.syncKey, copy.seen)),
      complete: async (id, copy) => {
        const audio = toVoicemailItem(await parseVoiceMessage(copy.source), copy.syncKey, copy.seen).audio;
        if (audio) await exchange.uploadAudio(id, audio);
      },
      setRead: (id, isRead) => exchange.setRead(id, isRead),
      remove: (id) => (profile.exchangeDelete === "hardDelete" ? exchange.hardDelete(id) : exchange.moveToDeletedItems(id)),
    },
    select: async (source) => {
      try {
        return decideCopy(await parseVoiceMessage(source), profile);
      } catch (e) {
        const err = ensureConnectorError(e);
        return { copy: false, code: err.code, message: err.message };
      }
    },
  };
}

async function syncLink(deps: Deps, link: MailboxLink, req: SyncRequest): Promise<VoicemailSyncReport> {
  const started = Date.now();
  const log = deps.log.child({ linkId: link.linkId, tenantId: link.tenantId });
  try {
    const ports = await openVoicemailPorts(deps, link);
    let report: VoicemailSyncReport;
    try {
      if (req.reason === "graph-resubscribe" || req.reason === "graph-reauthorize" || !(await deps.state.listSubscriptions({ linkId: link.linkId })).length) {
        await ensureSubscription(deps, link, ports.folderId, req.reason === "graph-reauthorize");
      }
      report = await syncVoicemail({
        ...ports, log,
        limits: { massDeleteMaxShare: ports.profile.massDelete.maxShare, massDeleteOverride: false },
        ids: { tenantId: link.tenantId, mailboxId: link.linkId },
        mode: isFull(req) ? "full" : "incremental",
      });
    } finally {
      await ports.voice.close();
    }
    const full = isFull(req);
    await deps.state.modifyLink(link.linkId, (l) => ({
      ...l, lastSyncAt: new Date().toISOString(), lastError: undefined, unreadVoice: report.unread, skippedItems: report.skippedTotal,
      // Only a full comparison measures drift: the lamp was wrong for these until now.
      readDriftTotal: (l.readDriftTotal ?? 0) + (full ? report.readDrift : 0),
    }));
    const acted = Object.values(report.actions).reduce((a, b) => a + b, 0);
    if (acted || report.skipped) log.info("voicemail.sync.done", { ...report.actions, skipped: report.skipped, readDrift: report.readDrift, ms: Date.now() - started, triggerLagMs: req.at ? Date.now() - req.at : undefined });
    return report;
  } catch (e) {
    const err = ensureConnectorError(e, "INTERNAL", { mailboxId: link.linkId, tenantId: link.tenantId });
    await deps.state.modifyLink(link.linkId, (l) => ({ ...l, lastError: { code: err.code, message: err.message, at: new Date().toISOString() } })).catch(() => undefined);
    log.error("voicemail.sync.failed", { error: err });
    throw err;
  }
}

/** Creates (or recreates) the link's subscription on its voicemail folder. */
export async function ensureSubscription(deps: Deps, link: MailboxLink, folderId: string, reauthorizeOnly = false): Promise<void> {
  const { publicBaseUrl } = deps.config;
  const secret = deps.config.secrets.webhookSecret;
  if (!publicBaseUrl || !secret) return; // no public endpoint (tests without webhooks): timers and store push still work
  const graph = deps.graph(link.tenantId);
  const existing = await deps.state.listSubscriptions({ linkId: link.linkId });
  if (reauthorizeOnly) {
    for (const s of existing) {
      try {
        await graph.request({ method: "POST", url: `/subscriptions/${s.subscriptionId}/reauthorize` });
        return;
      } catch (e) {
        if (!isConnectorError(e, "GRAPH_NOT_FOUND")) throw e;
      }
    }
  }
  for (const s of existing) {
    await graph.request({ method: "DELETE", url: `/subscriptions/${s.subscriptionId}` }).catch(() => undefined);
    await deps.state.deleteSubscription(s.subscriptionId);
  }
  const expiration = new Date(Date.now() + SUBSCRIPTION_MINUTES * 60_000).toISOString();
  const resource = `users/${link.userId}/mailFolders/${folderId}/messages`;
  const created = await graph.request<{ id: string; expirationDateTime: string }>({
    method: "POST", url: "/subscriptions",
    body: {
      // Voice messages only ever originate on the voice store, so Exchange-side creates need no
      // run: "created" would only echo the connector's own copies back (one notification each).
      changeType: "updated,deleted", resource, expirationDateTime: expiration,
      notificationUrl: `${publicBaseUrl}/api/graph/notifications`, lifecycleNotificationUrl: `${publicBaseUrl}/api/graph/lifecycle`,
      clientState: makeClientState(secret, link.linkId),
    },
  }).catch((e) => { throw new ConnectorError("SUBSCRIPTION_FAILED", `subscription for ${link.linkId} failed: ${ensureConnectorError(e).message}`, { mailboxId: link.linkId, tenantId: link.tenantId, cause: e, transient: ensureConnectorError(e).transient }); });
  await deps.state.putSubscription({ subscriptionId: created.id, linkId: link.linkId, tenantId: link.tenantId, resource, expiresAt: new Date(created.expirationDateTime).toISOString(), status: "active" });
}

/** Renews subscriptions that expire within `horizonHours`; recreates those Graph lost. */
export async function renewSubscriptions(deps: Deps, horizonHours = 48): Promise<{ renewed: number; recreated: number; failed: number }> {
  const due = await deps.state.listSubscriptions({ expiringBefore: new Date(Date.now() + horizonHours * 3600_000) });
  const result = { renewed: 0, recreated: 0, failed: 0 };
  for (const s of due) {
    try {
      const r = await deps.graph(s.tenantId).request<{ expirationDateTime: string }>({ method: "PATCH", url: `/subscriptions/${s.subscriptionId}`, body: { expirationDateTime: new Date(Date.now() + SUBSCRIPTION_MINUTES * 60_000).toISOString() } });
      await deps.state.putSubscription({ ...s, expiresAt: new Date(r.expirationDateTime).toISOString(), status: "active" });
      result.renewed++;
    } catch (e) {
      if (isConnectorError(e, "GRAPH_NOT_FOUND")) {
        await deps.state.deleteSubscription(s.subscriptionId);
        await enqueueSync(deps.syncQueue, { linkId: s.linkId, reason: "graph-resubscribe", at: Date.now() });
        result.recreated++;
      } else {
        await deps.state.putSubscription({ ...s, status: "failed" });
        deps.log.error("subscription.renew.failed", { subscriptionId: s.subscriptionId, linkId: s.linkId, error: e });
        result.failed++;
      }
    }
  }
  return result;
}

/** Longest delay a throttled run is put off by (Storage queues allow up to 7 days). */
const MAX_REQUEUE_SECONDS = 15 * 60;

/**
 * The sync worker's message handling. Graph's long throttling waits requeue the run for when
 * the budget is back, rather than failing it; problems that need an administrator (recorded on
 * the link as lastError) are not retried; other transient failures are rethrown so the host
 * retries the message and finally parks it in the poison queue.
 */
export async function handleSyncMessage(deps: Deps, req: SyncRequest): Promise<void> {
  try {
    await runSyncRequest(deps, req);
  } catch (e) {
    if (isConnectorError(e, "GRAPH_THROTTLED")) {
      const delay = Math.min(MAX_REQUEUE_SECONDS, Math.max(1, e.retryAfterSeconds ?? 60));
      deps.log.warn("voicemail.sync.throttled", { linkId: req.linkId, retryAfterSeconds: delay });
      await enqueueSync(deps.syncQueue, { ...req, reason: req.reason === "admin" ? "admin" : "follow-up" }, delay);
      return;
    }
    if (isConnectorError(e) && !e.transient) return; // visible on the link; retrying cannot help
    throw e;
  }
}
