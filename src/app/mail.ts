/**
 * Runs e-mail on the phone for one mailbox link (profile `emailToPhone`, issue 22): the chosen
 * Exchange folders' new mail copied into the store folder, read state and deletes kept in step,
 * under the link's "mail" lease. Triggered by the Inbox subscription's notifications
 * (src/app/subscriptions.ts), the store's push for the store folder (src/app/webhooks.ts), and
 * the poll and reconcile timers (src/app/schedule.ts).
 */
import { ensureConnectorError } from "../errors.js";
import { ExchangeMail } from "../graph/mail.js";
import { ExchangeVoicemail } from "../graph/voicemail.js";
import type { VoiceMailboxSession } from "../imap/voiceMailbox.js";
import type { FeatureProfile } from "../admin/profiles.js";
import type { MailboxLink } from "../state/stateStore.js";
import type { Logger } from "../log.js";
import { syncMail, type MailCursors, type MailExchangePort, type MailStatePort, type MailSyncReport } from "../sync/mailSync.js";
import type { MailRecord } from "../sync/mailPlanner.js";
import type { LeaseGuard } from "../sync/mailboxRun.js";
import { gateMailPorts, leaseHooks } from "../sync/writeGate.js";
import type { Deps } from "./deps.js";
import { isFullRun, runKeyOf, runLinkUnderLease, type LinkRunResult } from "./linkRun.js";
import type { SyncRequest } from "./syncQueue.js";
import { recordKindOutcome } from "./kindStatus.js";
import { openLinkedMailbox } from "./storeAccess.js";

/** Well-known names are used as they are in Graph paths (mailfolder resource); others are looked up once. */
const WELL_KNOWN = /^(inbox|archive|deleteditems|junkemail|drafts|sentitems)$/i;
const folderIds = new Map<string, string>();

export async function runMailRequest(deps: Deps, req: SyncRequest): Promise<LinkRunResult<MailSyncReport | undefined>> {
  return runLinkUnderLease(deps, req, "mail", (link, log, lease) => syncLinkMail(deps, link, req, log, lease));
}

export interface MailRunPorts {
  store: VoiceMailboxSession;
  exchange: MailExchangePort;
  state: MailStatePort;
}

export async function openMailPorts(deps: Deps, link: MailboxLink, profile: FeatureProfile, lease?: LeaseGuard): Promise<MailRunPorts> {
  const opts = profile.emailToPhone;
  const mail = new ExchangeMail(deps.graph(link.tenantId), link.userId);
  const folderRef = async (name: string) => {
    if (WELL_KNOWN.test(name)) return name.toLowerCase();
    const key = `${link.linkId}|${name}`;
    let id = folderIds.get(key);
    if (!id) { id = await new ExchangeVoicemail(deps.graph(link.tenantId), link.userId).ensureFolder(name); folderIds.set(key, id); }
    return id;
  };
  const store = await openLinkedMailbox(deps, link, {
    folder: opts.storeFolder, removal: { mode: "expunge" }, createFolder: opts.storeFolder.toUpperCase() !== "INBOX",
    // A copy is text and the kept attachments; the voice store's own limit applies to reading it back.
    maxMessageBytes: Math.max(1024 * 1024, opts.attachments.maxBytes * 2),
  });
  return {
    store,
    exchange: {
      changes: async (folder, deltaLink, since) => mail.changes(await folderRef(folder), deltaLink, since),
      get: (id) => mail.get(id),
      attachments: (id) => mail.attachments(id),
      attachmentBytes: (id, aid) => mail.attachmentBytes(id, aid),
      setRead: (id, isRead) => mail.setRead(id, isRead),
      remove: (id) => mail.moveToDeletedItems(id),
    },
    state: (() => {
      const s = deps.state.recordState<MailRecord, MailCursors>(link.linkId, "mail", lease && { beforeWrite: () => lease.assertHeld() });
      return { ...s, loadCursors: async () => (await s.loadCursors()) ?? undefined };
    })(),
  };
}

async function syncLinkMail(deps: Deps, link: MailboxLink, req: SyncRequest, log: Logger, lease: LeaseGuard): Promise<MailSyncReport | undefined> {
  const profile = (await deps.directory({ profileId: link.profileId })).linkProfile(link);
  if (!profile.emailToPhone.enabled) return undefined;
  const started = Date.now();
  try {
    const ports = await openMailPorts(deps, link, profile, lease);
    let report: MailSyncReport;
    try {
      report = await syncMail({
        ...gateMailPorts(ports, leaseHooks(lease)),
        rules: { ...profile.emailToPhone, loopPreventionDomain: profile.loopPreventionDomain, userAddress: link.upn },
        owner: { address: link.upn },
        log,
        ids: { tenantId: link.tenantId, mailboxId: link.linkId },
        mode: isFullRun(req) ? "full" : "incremental",
        timeUp: () => lease.timeUp(),
        expectEchoes: (writes) => deps.state.expectEchoes(link.linkId, writes, "mail"),
      });
    } finally {
      await ports.store.close();
    }
    if (report.unfinished) {
      // Time was up: a follow-up run goes on (enqueued when the lease is released).
      await deps.state.requestRun(runKeyOf(link.linkId, "mail"), false);
      log.info("mail.sync.continues", { reason: req.reason, ...report.actions, unfinished: report.unfinished, ms: Date.now() - started });
      return report;
    }
    await recordKindOutcome(deps, link.linkId, "mail", (k) => ({ ...k, lastError: undefined, skipped: report.skipped }), true, link);
    const acted = Object.values(report.actions).reduce((a, b) => a + b, 0);
    if (acted || report.skipped) log.info("mail.sync.done", { reason: req.reason, ...report.actions, skipped: report.skipped, unrenderable: report.unrenderable, ...Object.fromEntries(Object.entries(report.notCopied).map(([k, v]) => [`notCopied.${k}`, v])), ms: Date.now() - started });
    return report;
  } catch (e) {
    const err = ensureConnectorError(e, "INTERNAL", { mailboxId: link.linkId, tenantId: link.tenantId });
    await recordKindOutcome(deps, link.linkId, "mail", (k) => ({ ...k, lastError: { code: err.code, message: err.message, at: new Date().toISOString() } }), false).catch(() => undefined);
    log.error("mail.sync.failed", { error: err });
    throw err;
  }
}
