/**
 * The calendar mirror and the UC location for one mailbox link.
 *  - calendar runs (Graph notifications on events, the hourly reconcile, which also slides the
 *    window once a day) mirror the window into the store's calendar folder;
 *  - location runs set the user's UC location from the mirrored calendar: IMAP METADATA on the
 *    voice mailbox (RFC 5464), and a signed POST to the voice system when it has a callback.
 *    Each run schedules the next one for the next event start or end (a delayed queue
 *    message), so the location changes on time, not at the next reconcile.
 */
import { guardLimits } from "./guardLimits.js";
import { ConnectorError, ensureConnectorError } from "../errors.js";
import { ExchangeCalendar } from "../graph/calendar.js";
import { openLinkedMailbox } from "./storeAccess.js";
import { groupedWrites } from "../imap/groupedWrites.js";
import type { Logger } from "../log.js";
import type { MailboxLink } from "../state/stateStore.js";
import { syncCalendar, type CalendarCursors, type CalendarRecord, type CalendarSyncReport } from "../sync/calendarSync.js";
import { locationAt } from "../sync/ucLocation.js";
import { STORE_SIGNATURE_HEADER, STORE_TIMESTAMP_HEADER } from "../webhooks/storeNotifications.js";
import { signatureHeader } from "../security/endpointSecrets.js";
import { postJson } from "../security/outbound.js";
import type { Deps } from "./deps.js";
import { recordKindOutcome } from "./kindStatus.js";
import { isFullRun, runKeyOf, runLinkUnderLease, type LinkRunResult } from "./linkRun.js";
import type { LeaseGuard } from "../sync/mailboxRun.js";
import { gateCalendarPorts, leaseHooks } from "../sync/writeGate.js";
import { enqueueSync, type SyncRequest } from "./syncQueue.js";

/** The METADATA entry the voice system reads (RFC 5464 section 3.2: /shared/vendor/<vendor>/...). */
export const LOCATION_ENTRY = "/shared/vendor/umconnect/uc-location";
/** Storage queue messages can be hidden for at most 7 days. */
const MAX_DELAY_SECONDS = 7 * 24 * 3600 - 60;

export async function runCalendarRequest(deps: Deps, req: SyncRequest): Promise<LinkRunResult<CalendarSyncReport | undefined>> {
  return runLinkUnderLease(deps, req, "calendar", (link, log, lease) => syncLinkCalendar(deps, link, req, log, lease));
}

async function syncLinkCalendar(deps: Deps, link: MailboxLink, req: SyncRequest, log: Logger, lease: LeaseGuard): Promise<CalendarSyncReport | undefined> {
  const dir = await deps.directory({ endpointId: link.endpointId, profileId: link.profileId });
  const profile = dir.linkProfile(link);
  if (!profile.calendar.enabled) return undefined;
  const started = Date.now();
  try {
    const exchange = new ExchangeCalendar(deps.graph(link.tenantId), link.userId);
    const session = await openLinkedMailbox(deps, link, { folder: profile.calendar.folder, removal: { mode: "expunge" }, createFolder: true });
    // The run writes entries several at a time; on one connection they go out grouped (src/imap/groupedWrites.ts).
    const store = groupedWrites(session);
    let report: CalendarSyncReport;
    try {
      report = await syncCalendar({
        ...gateCalendarPorts({ store, state: deps.state.recordState<CalendarRecord, CalendarCursors>(link.linkId, "calendar", { beforeWrite: () => lease.assertHeld() }) }, leaseHooks(lease)),
        exchange: { changes: (w, d) => exchange.changes(w, d) },
        window: { pastDays: profile.calendar.pastDays, futureDays: profile.calendar.futureDays },
        foreignItems: profile.calendar.foreignItems,
        now: new Date(),
        limits: guardLimits(deps, profile, link, "calendar"),
        log,
        ids: { tenantId: link.tenantId, mailboxId: link.linkId },
        mode: isFullRun(req) ? "full" : "incremental",
        timeUp: () => lease.timeUp(),
      });
    } finally {
      await store.close();
    }
    if (report.unfinished) {
      // Time was up: a follow-up run goes on (enqueued when the lease is released); the last
      // complete sync stays the kind's last sync.
      await deps.state.requestRun(runKeyOf(link.linkId, "calendar"), false);
      log.info("calendar.sync.continues", { ...report.actions, unfinished: report.unfinished, ms: Date.now() - started });
      return report;
    }
    await recordKindOutcome(deps, link.linkId, "calendar", (k) => ({ ...k, lastError: undefined, items: report.items, skipped: report.skipped }), true, link);
    const acted = Object.values(report.actions).reduce((a, b) => a + b, 0);
    if (acted || report.skipped || report.corrupt) log.info("calendar.sync.done", { ...report.actions, items: report.items, skipped: report.skipped, windowMoved: report.windowMoved, corrupt: report.corrupt, itemsRead: report.itemsRead, ms: Date.now() - started });
    if (profile.calendar.changeLocation.enabled && (report.busyChanged || isFullRun(req))) {
      await enqueueSync(deps.syncQueue, { linkId: link.linkId, kind: "location", reason: "scheduled", at: Date.now() });
    }
    return report;
  } catch (e) {
    const err = ensureConnectorError(e, "INTERNAL", { mailboxId: link.linkId, tenantId: link.tenantId });
    await recordKindOutcome(deps, link.linkId, "calendar", (k) => ({ ...k, lastError: { code: err.code, message: err.message, at: new Date().toISOString() } }), false).catch(() => undefined);
    log.error("calendar.sync.failed", { error: err });
    throw err;
  }
}

export interface LocationReport { value: string | null; changed: boolean; nextChange?: string }

export async function runLocationRequest(deps: Deps, req: SyncRequest): Promise<LinkRunResult<LocationReport | undefined>> {
  return runLinkUnderLease(deps, req, "location", (link, log, lease) => updateLocation(deps, link, log, lease));
}

async function updateLocation(deps: Deps, link: MailboxLink, log: Logger, lease: Pick<LeaseGuard, "assertHeld">): Promise<LocationReport | undefined> {
  const dir = await deps.directory({ endpointId: link.endpointId, profileId: link.profileId });
  const profile = dir.linkProfile(link);
  if (!profile.calendar.enabled || !profile.calendar.changeLocation.enabled) return undefined;
  try {
    const records = await deps.state.recordState<CalendarRecord, CalendarCursors>(link.linkId, "calendar").loadItems();
    const now = new Date();
    const state = locationAt(records, now, profile.calendar.changeLocation);
    const previous = link.kinds?.location;
    const changed = (previous?.location ?? null) !== state.value || previous?.lastSyncAt === undefined;
    if (changed) {
      const store = await openLinkedMailbox(deps, link, { folder: "INBOX", removal: { mode: "expunge" } });
      // Like every other write, only while this run holds the link's lease: a run that lost it
      // could otherwise put back a location the newer run has already replaced.
      try { lease.assertHeld(); await store.setMetadata(LOCATION_ENTRY, state.value); } finally { await store.close(); }
      const callback = dir.locationCallback(link.endpointId);
      if (callback) { lease.assertHeld(); await postLocation(deps, callback, link, state.value, now); }
      log.info("location.changed", { value: state.value === null ? "none" : "set" });
    }
    const nextIso = state.nextChange?.toISOString();
    // One scheduled run per transition: a later calendar change that keeps it adds none.
    if (state.nextChange && nextIso !== previous?.nextCheckAt) {
      const delay = Math.min(MAX_DELAY_SECONDS, Math.max(1, Math.ceil((state.nextChange.getTime() - Date.now()) / 1000)));
      await enqueueSync(deps.syncQueue, { linkId: link.linkId, kind: "location", reason: "scheduled", at: state.nextChange.getTime() }, delay);
    }
    await recordKindOutcome(deps, link.linkId, "location", (k) => ({ ...k, lastError: undefined, location: state.value, nextCheckAt: nextIso }));
    return { value: state.value, changed, nextChange: nextIso };
  } catch (e) {
    const err = ensureConnectorError(e, "INTERNAL", { mailboxId: link.linkId, tenantId: link.tenantId });
    await recordKindOutcome(deps, link.linkId, "location", (k) => ({ ...k, lastError: { code: err.code, message: err.message, at: new Date().toISOString() } }), false).catch(() => undefined);
    log.error("location.failed", { error: err });
    throw err;
  }
}

/**
 * The same signature scheme as store notifications, in the other direction: the endpoint's own
 * secret, with the endpoint id and "callback" in the signed text (src/security/endpointSecrets.ts),
 * posted without following redirects and never to an internal address (src/security/outbound.ts).
 */
async function postLocation(deps: Deps, url: string, link: MailboxLink, value: string | null, at: Date): Promise<void> {
  const keys = (await deps.directory({ endpointId: link.endpointId })).signingKeys(link.endpointId);
  if (!keys) throw new ConnectorError("CONFIG_INVALID", `endpoint ${link.endpointId} has no signing secret for its location callback (umconnect endpoint rotate-secret ${link.endpointId})`, { endpoint: link.endpointId });
  const body = JSON.stringify({ event: "uc-location", mailbox: link.voiceMailbox, location: value, at: at.toISOString() });
  const ts = Math.floor(Date.now() / 1000);
  const status = await postJson(url, { "content-type": "application/json", [STORE_TIMESTAMP_HEADER]: String(ts), [STORE_SIGNATURE_HEADER]: signatureHeader(keys, link.endpointId, "callback", ts, body) }, body, deps.config.outbound, { what: "location callback", ids: { endpoint: link.endpointId } });
  if (status < 200 || status > 299) throw new ConnectorError("CALLBACK_FAILED", `location callback answered HTTP ${status}${status >= 300 && status < 400 ? " (redirects are not followed)" : ""}`, { endpoint: link.endpointId, transient: status >= 500 });
}
