/**
 * Runs the two-way contacts sync for one mailbox link: the store's contacts folder and the
 * profile's Exchange contact folder, under the link's contacts lease.
 */
import { guardLimits } from "./guardLimits.js";
import { ensureConnectorError } from "../errors.js";
import { ExchangeContacts } from "../graph/contacts.js";
import type { VoiceMailboxSession } from "../imap/voiceMailbox.js";
import { openLinkedMailbox } from "./storeAccess.js";
import { groupedWrites } from "../imap/groupedWrites.js";
import type { ConflictRecord, MailboxLink, RecordStatePort } from "../state/stateStore.js";
import type { FeatureProfile } from "../admin/profiles.js";
import { syncContacts, type ContactExchangePort, type ContactCursors, type ContactRecord, type ContactsSyncReport } from "../sync/contactsSync.js";
import type { Logger } from "../log.js";
import type { Deps } from "./deps.js";
import { isFullRun, runKeyOf, runLinkUnderLease, type LinkRunResult } from "./linkRun.js";
import type { SyncRequest } from "./syncQueue.js";
import { recordKindOutcome } from "./kindStatus.js";
import type { LeaseGuard } from "../sync/mailboxRun.js";
import { gateContactsPorts, leaseHooks } from "../sync/writeGate.js";

const folderIds = new Map<string, string>();

export async function runContactsRequest(deps: Deps, req: SyncRequest): Promise<LinkRunResult<ContactsSyncReport | undefined>> {
  return runLinkUnderLease(deps, req, "contacts", (link, log, lease) => syncLinkContacts(deps, link, req, log, lease));
}

/** The ports of one link's contacts run, bound to its endpoint, profile and contact folder. */
export interface ContactsRunPorts {
  store: VoiceMailboxSession;
  exchange: ContactExchangePort;
  state: RecordStatePort<ContactRecord, ContactCursors>;
  putConflict(c: ConflictRecord): Promise<void>;
  folderId: string;
}

export async function openContactsPorts(deps: Deps, link: MailboxLink, profile: FeatureProfile, lease?: LeaseGuard): Promise<ContactsRunPorts> {
  const exchange = new ExchangeContacts(deps.graph(link.tenantId), link.userId);
  const cacheKey = `${link.linkId}|${profile.contacts.exchangeFolder}`;
  let folderId = folderIds.get(cacheKey);
  if (!folderId) { folderId = await exchange.ensureFolder(profile.contacts.exchangeFolder); folderIds.set(cacheKey, folderId); }
  const fid = folderId;
  const session = await openLinkedMailbox(deps, link, { folder: profile.contacts.folder, removal: { mode: "expunge" }, createFolder: true, maxMessageBytes: 1024 * 1024 });
  // The run writes cards several at a time; on one connection they go out grouped (src/imap/groupedWrites.ts).
  const store: VoiceMailboxSession = groupedWrites(session);
  return {
    store,
    folderId: fid,
    exchange: {
      changes: (deltaLink) => exchange.changes(fid, deltaLink),
      get: (id) => exchange.get(id),
      create: (key, fields) => exchange.create(fid, key, fields),
      update: (id, fields) => exchange.update(id, fields),
      remove: (id) => exchange.remove(id),
      findBySyncKey: (key) => exchange.findBySyncKey(fid, key),
      getPhoto: (id) => exchange.getPhoto(id),
      putPhoto: (id, photo) => exchange.putPhoto(id, photo),
      withPictures: () => exchange.withPictures(fid),
    },
    state: deps.state.recordState<ContactRecord, ContactCursors>(link.linkId, "contacts", lease && { beforeWrite: () => lease.assertHeld() }),
    putConflict: (c) => deps.state.putConflict(link.linkId, c),
  };
}

async function syncLinkContacts(deps: Deps, link: MailboxLink, req: SyncRequest, log: Logger, lease: LeaseGuard): Promise<ContactsSyncReport | undefined> {
  const profile = (await deps.directory({ profileId: link.profileId })).linkProfile(link);
  if (!profile.contacts.enabled) return undefined;
  const started = Date.now();
  try {
    const ports = await openContactsPorts(deps, link, profile, lease);
    let report: ContactsSyncReport;
    try {
      report = await syncContacts({
        ...gateContactsPorts(ports, leaseHooks(lease)),
        limits: guardLimits(deps, profile, link, "contacts"),
        log,
        ids: { tenantId: link.tenantId, mailboxId: link.linkId },
        mode: isFullRun(req) ? "full" : "incremental",
        timeUp: () => lease.timeUp(),
        expectEchoes: (writes) => deps.state.expectEchoes(link.linkId, writes, "contacts"),
      });
    } finally {
      await ports.store.close();
    }
    if (report.unfinished) {
      // Time was up: a follow-up run goes on (enqueued when the lease is released); the last
      // complete sync stays the kind's last sync.
      await deps.state.requestRun(runKeyOf(link.linkId, "contacts"), false);
      log.info("contacts.sync.continues", { ...report.actions, unfinished: report.unfinished, ms: Date.now() - started });
      return report;
    }
    await recordKindOutcome(deps, link.linkId, "contacts", (k) => ({ ...k, lastError: undefined, conflicts: (k.conflicts ?? 0) + report.conflicts, skipped: report.skippedTotal }), true, link);
    const acted = Object.values(report.actions).reduce((a, b) => a + b, 0);
    if (acted || report.skipped || report.duplicatesRemoved || report.corrupt) log.info("contacts.sync.done", { ...report.actions, conflicts: report.conflicts, skipped: report.skipped, duplicatesRemoved: report.duplicatesRemoved, corrupt: report.corrupt, itemsRead: report.itemsRead, ms: Date.now() - started });
    return report;
  } catch (e) {
    const err = ensureConnectorError(e, "INTERNAL", { mailboxId: link.linkId, tenantId: link.tenantId });
    await recordKindOutcome(deps, link.linkId, "contacts", (k) => ({ ...k, lastError: { code: err.code, message: err.message, at: new Date().toISOString() } }), false).catch(() => undefined);
    log.error("contacts.sync.failed", { error: err });
    throw err;
  }
}
