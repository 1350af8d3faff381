/**
 * Graph subscriptions of a mailbox link, one per watched resource: the voicemail folder's
 * messages, the contact folder, the calendar's events. Their upkeep is a concern of its own:
 * a sync run never waits on it or fails because of it (a refused subscription means polling,
 * not no sync). Upkeep runs as its own queued run kind ("subscriptions", own lease), triggered
 *  - when a link is made or an administrator asks (reason "admin"),
 *  - by the upkeep timer for links whose subscriptions are missing, due for renewal, duplicated,
 *    of an old format, or not working (src/app/schedule.ts enqueueSubscriptionUpkeep),
 *  - by lifecycle events (reauthorizationRequired, subscriptionRemoved, unknown ones).
 *
 * Renewal creates a new subscription with a fresh clientState (src/webhooks/clientState.ts)
 * and then deletes the old one: the old clientState is accepted until the old subscription is
 * gone. Graph allows a second subscription for the same resource and URL, so every run also
 * removes extra subscriptions it knows of (a DELETE that failed before), and `umconnect
 * subscriptions --audit` removes those only Graph knows of.
 *
 * A refusal (4xx) or failure is recorded per link and kind (state and last error, on the status
 * page), the link is polled at the fast-check interval meanwhile (subscriptionFallback), the
 * status report raises one alert per link, and the upkeep timer tries again.
 *
 * Lifetime: start at the documented maximum for Outlook resources without resource data
 * (10,080 minutes, https://learn.microsoft.com/en-us/graph/api/resources/subscription#subscription-lifetime),
 * step down when Graph answers 400 about the expiration (older pages said 4,230), and remember
 * the accepted value per tenant.
 */
import { ConnectorError, ensureConnectorError, isConnectorError } from "../errors.js";
import { ExchangeContacts } from "../graph/contacts.js";
import { ExchangeVoicemail } from "../graph/voicemail.js";
import type { MailboxLink, SubscriptionHealth, SubscriptionRecord } from "../state/stateStore.js";
import { makeClientState, newNonce } from "../webhooks/clientState.js";
import { subscriptionSubject, type NotificationWork } from "../webhooks/graphNotifications.js";
import type { Deps } from "./deps.js";
import { LINK_BUCKETS, linkBucket } from "../state/links.js";
import { runLinkUnderLease, type LinkRunResult } from "./linkRun.js";
import { enqueueSync, type SyncRequest } from "./syncQueue.js";

export type SubscriptionKind = NotificationWork["kind"];
export const SUBSCRIPTION_KINDS: readonly SubscriptionKind[] = ["voicemail", "contacts", "calendar", "mail"];

/** Outlook resources without resource data: at most 10,080 minutes (subscription resource doc). */
export const MAX_SUBSCRIPTION_MINUTES = 10_080;
/** Lifetimes tried after a 400 on the expiration: the older documented Outlook maximum, the
 *  rich-notification maximum, then an hour (Graph raises anything under 45 minutes to 45). */
const STEP_DOWN = [4_230, 1_440, 60];
/** Asked for a little under the limit, so clock skew between us and Graph cannot exceed it. */
const SKEW_MINUTES = 10;
/** Renew (recreate) when less than this is left, or less than half the lifetime. */
const RENEW_HORIZON_MS = 48 * 3600_000;

export interface SubscriptionSpec {
  kind: SubscriptionKind;
  resource: string;
  changeType: string;
}

/** Voice messages only ever originate on the voice store, so Exchange-side creates need no
 * run: "created" would only echo the connector's own copies back (one notification each). */
export const voicemailSubscription = (link: MailboxLink, folderId: string): SubscriptionSpec =>
  ({ kind: "voicemail", resource: `users/${link.userId}/mailFolders/${folderId}/messages`, changeType: "updated,deleted" });
export const contactsSubscription = (link: MailboxLink, folderId: string): SubscriptionSpec =>
  ({ kind: "contacts", resource: `users/${link.userId}/contactFolders/${folderId}/contacts`, changeType: "created,updated,deleted" });
export const calendarSubscription = (link: MailboxLink): SubscriptionSpec =>
  ({ kind: "calendar", resource: `users/${link.userId}/events`, changeType: "created,updated,deleted" });

/** E-mail on the phone: new mail in the Inbox (created), read in Outlook (updated), deleted or
 *  moved away (deleted); the well-known name in key syntax, as outlook-change-notifications-overview
 *  writes it (`me/mailFolders('inbox')/messages`), which also tells it from the voicemail folder's. */
export const mailSubscription = (link: MailboxLink): SubscriptionSpec =>
  ({ kind: "mail", resource: `users/${link.userId}/mailFolders('inbox')/messages`, changeType: "created,updated,deleted" });

export function kindOfResource(resource: string): SubscriptionKind {
  if (/\/mailFolders\('inbox'\)\/messages$/i.test(resource)) return "mail";
  if (/\/contacts$/i.test(resource)) return "contacts";
  if (/\/events$/i.test(resource)) return "calendar";
  return "voicemail";
}

const ofKind = (subs: SubscriptionRecord[], kind: SubscriptionKind) => subs.filter((s) => kindOfResource(s.resource) === kind);
const newestFirst = (a: SubscriptionRecord, b: SubscriptionRecord) => b.expiresAt.localeCompare(a.expiresAt);

/** Due for renewal: close to expiry, past half its life, or made before clientState nonces. */
export function renewalDue(s: SubscriptionRecord, now = Date.now()): boolean {
  if (!s.nonce) return true;
  const left = Date.parse(s.expiresAt) - now;
  const life = s.createdAt ? Date.parse(s.expiresAt) - Date.parse(s.createdAt) : Infinity;
  return left < Math.min(RENEW_HORIZON_MS, life / 2);
}

/** The kinds a link's profile watches (voicemail always). */
export async function neededKinds(deps: Deps, link: MailboxLink): Promise<SubscriptionKind[]> {
  const profile = (await deps.directory({ profileId: link.profileId })).linkProfile(link);
  return SUBSCRIPTION_KINDS.filter((k) => k === "voicemail" || (k === "contacts" ? profile.contacts.enabled : k === "mail" ? profile.emailToPhone.enabled : profile.calendar.enabled));
}

const folderIds = new Map<string, string>();

async function specOf(deps: Deps, link: MailboxLink, kind: SubscriptionKind): Promise<SubscriptionSpec> {
  if (kind === "calendar") return calendarSubscription(link);
  if (kind === "mail") return mailSubscription(link);
  const profile = (await deps.directory({ profileId: link.profileId })).linkProfile(link);
  const name = kind === "voicemail" ? profile.exchangeFolder : profile.contacts.exchangeFolder;
  const key = `${link.linkId}|${kind}|${name}`;
  let id = folderIds.get(key);
  if (!id) {
    id = kind === "voicemail" ? await new ExchangeVoicemail(deps.graph(link.tenantId), link.userId).ensureFolder(name) : await new ExchangeContacts(deps.graph(link.tenantId), link.userId).ensureFolder(name);
    folderIds.set(key, id);
  }
  return kind === "voicemail" ? voicemailSubscription(link, id) : contactsSubscription(link, id);
}

export interface UpkeepReport {
  created: number;
  renewed: number;
  reauthorized: number;
  deleted: number;
  problems: number;
}

export async function runSubscriptionRequest(deps: Deps, req: SyncRequest): Promise<LinkRunResult<UpkeepReport | undefined>> {
  return runLinkUnderLease(deps, req, "subscriptions", (link) => keepSubscriptions(deps, link, req));
}

/** One upkeep pass over a link's subscriptions. Never throws for Graph's answers: they are recorded. */
export async function keepSubscriptions(deps: Deps, link: MailboxLink, req: SyncRequest): Promise<UpkeepReport | undefined> {
  const { publicBaseUrl } = deps.config;
  const secret = deps.config.secrets.webhookSecret;
  if (!publicBaseUrl || !secret) return undefined; // no public endpoint: timers and store push still work
  const log = deps.log.child({ linkId: link.linkId, tenantId: link.tenantId, kind: "subscriptions", reason: req.reason });
  const report: UpkeepReport = { created: 0, renewed: 0, reauthorized: 0, deleted: 0, problems: 0 };
  const needed = await neededKinds(deps, link);
  const all = await deps.state.listSubscriptions({ linkId: link.linkId });
  const health: Partial<Record<SubscriptionKind, SubscriptionHealth | undefined>> = {};
  for (const kind of SUBSCRIPTION_KINDS) {
    let mine = ofKind(all, kind);
    if (!needed.includes(kind)) {
      // The profile no longer watches this kind.
      for (const s of mine) if (await removeSubscription(deps, s, log)) report.deleted++;
      health[kind] = undefined;
      continue;
    }
    try {
      let catchUp: SyncRequest["reason"] | undefined;
      if (req.reason === "graph-resubscribe" && req.subscriptionKind === kind && req.subscriptionId) {
        // Graph removed it: forget it; a new one follows below, then delta catches up.
        const gone = mine.find((s) => s.subscriptionId === req.subscriptionId);
        if (gone) { await deps.state.deleteSubscription(gone.subscriptionId); mine = mine.filter((s) => s !== gone); catchUp = "follow-up"; }
      }
      const reauthorize = (req.reason === "graph-reauthorize" && req.subscriptionKind === kind) || req.reason === "reconcile" || req.reason === "graph-lifecycle";
      if (reauthorize) {
        // reauthorizationRequired: POST /subscriptions/{id}/reauthorize, then catch up with delta
        // (changes during a delivery pause are lost; change-notifications-lifecycle-events).
        // "reconcile" is a coalesced follow-up that may carry one: reauthorize them all.
        for (const s of [...mine]) {
          if (req.reason === "graph-reauthorize" && req.subscriptionId && s.subscriptionId !== req.subscriptionId) continue;
          try {
            await deps.graph(link.tenantId).request({ method: "POST", url: `/subscriptions/${s.subscriptionId}/reauthorize` });
            report.reauthorized++;
          } catch (e) {
            if (!isConnectorError(e, "GRAPH_NOT_FOUND")) throw e;
            await deps.state.deleteSubscription(s.subscriptionId);
            mine = mine.filter((x) => x !== s);
          }
          catchUp = "follow-up";
        }
      }
      mine.sort(newestFirst);
      const [current, ...extras] = mine;
      // Duplicates (a DELETE that failed, two racing creates): Graph would notify twice.
      for (const s of extras) if (await removeSubscription(deps, s, log)) report.deleted++;
      const spec = await specOf(deps, link, kind);
      let active = current;
      if (!current || renewalDue(current) || current.resource.toLowerCase() !== spec.resource.toLowerCase()) {
        active = await createSubscription(deps, link, spec, log);
        if (current) {
          report.renewed++;
          await removeSubscription(deps, current, log);
        } else {
          report.created++;
          // A link that had none may have missed changes (removed subscription, new link).
          catchUp ??= req.reason === "admin" ? undefined : "follow-up";
        }
      }
      health[kind] = { state: "active", since: link.subscriptions?.[kind]?.state === "active" ? link.subscriptions[kind]!.since : new Date().toISOString(), expiresAt: active!.expiresAt };
      if (catchUp) await enqueueSync(deps.syncQueue, { linkId: link.linkId, ...(kind === "voicemail" ? {} : { kind }), reason: catchUp, at: Date.now() });
    } catch (e) {
      const err = ensureConnectorError(e, "SUBSCRIPTION_FAILED", { mailboxId: link.linkId, tenantId: link.tenantId });
      if (err.code === "STATE_UNAVAILABLE") throw err; // the run is retried; nothing to record
      // Graph said no (a 4xx other than throttling): validation failed, lifetime or the
      // 1,000-per-mailbox limit, permission. Anything else (5xx, timeouts) merely failed.
      const refused = /Graph 4(?!29)\d\d/.test(err.message);
      const prev = link.subscriptions?.[kind];
      const state = refused ? "refused" : "failed";
      health[kind] = { state, since: prev && prev.state === state ? prev.since : new Date().toISOString(), lastError: { code: err.code, message: err.message.slice(0, 500), at: new Date().toISOString() }, expiresAt: prev?.expiresAt };
      report.problems++;
      log.warn("subscription.upkeep.failed", { subscriptionKind: kind, state, error: err });
    }
  }
  await deps.state.modifyLink(link.linkId, (l) => {
    const subscriptions = { ...l.subscriptions };
    for (const k of SUBSCRIPTION_KINDS) { if (health[k]) subscriptions[k] = health[k]; else delete subscriptions[k]; }
    const fallback = Object.values(subscriptions).some((h) => h && h.state !== "active");
    return { ...l, subscriptions: Object.keys(subscriptions).length ? subscriptions : undefined, subscriptionFallback: fallback || undefined };
  });
  if (report.created || report.renewed || report.reauthorized || report.deleted) log.info("subscription.upkeep.done", { ...report });
  return report;
}

/** Creates a subscription with a fresh clientState at the longest lifetime the tenant accepts. */
/**
 * Renewals spread over the day: a link's subscriptions end up to a day (at most a quarter of
 * the lifetime) earlier than the longest lifetime, by its bucket (a hash of its id). Links made
 * together (a bulk import) then come due at different hours, and so does every renewal after.
 */
export function spreadMinutes(linkId: string, lifetimeMinutes: number): number {
  return Math.floor((linkBucket(linkId) / LINK_BUCKETS) * Math.min(24 * 60, lifetimeMinutes / 4));
}

async function createSubscription(deps: Deps, link: MailboxLink, spec: SubscriptionSpec, log: { info: (m: string, f: Record<string, unknown>) => void }): Promise<SubscriptionRecord> {
  const base = deps.config.publicBaseUrl!;
  const nonce = newNonce();
  const clientState = makeClientState(deps.config.secrets.webhookSecret!, subscriptionSubject(link.linkId, spec.kind), link.tenantId, nonce);
  const remembered = await deps.state.getSubscriptionMinutes(link.tenantId);
  let minutes = remembered ?? MAX_SUBSCRIPTION_MINUTES;
  for (;;) {
    try {
      const created = await deps.graph(link.tenantId).request<{ id: string; expirationDateTime: string }>({
        method: "POST", url: "/subscriptions",
        body: {
          changeType: spec.changeType, resource: spec.resource, expirationDateTime: new Date(Date.now() + (minutes - SKEW_MINUTES - spreadMinutes(link.linkId, minutes)) * 60_000).toISOString(),
          notificationUrl: `${base}/api/graph/notifications`, lifecycleNotificationUrl: `${base}/api/graph/lifecycle`, clientState,
        },
      });
      if (minutes !== (remembered ?? MAX_SUBSCRIPTION_MINUTES)) {
        await deps.state.putSubscriptionMinutes(link.tenantId, minutes);
        log.info("subscription.lifetime.stepped", { minutes });
      }
      const record: SubscriptionRecord = { subscriptionId: created.id, linkId: link.linkId, tenantId: link.tenantId, resource: spec.resource, expiresAt: new Date(created.expirationDateTime).toISOString(), status: "active", nonce, createdAt: new Date().toISOString() };
      await deps.state.putSubscription(record);
      return record;
    } catch (e) {
      const next = lowerLifetime(e, minutes);
      if (next === undefined) throw new ConnectorError("SUBSCRIPTION_FAILED", `${spec.kind} subscription for ${link.linkId}: ${ensureConnectorError(e).message}`, { mailboxId: link.linkId, tenantId: link.tenantId, cause: e, transient: ensureConnectorError(e).transient });
      minutes = next;
    }
  }
}

/** The next lifetime to try after Graph refused `minutes`, or undefined when the refusal was about something else. */
export function lowerLifetime(e: unknown, minutes: number): number | undefined {
  const err = ensureConnectorError(e);
  if (!/^Graph 400\b/.test(err.message) || !/expiration/i.test(err.message)) return undefined;
  // "Subscription expiration can only be 4230 minutes in the future." names the limit.
  const named = Number(/(\d{2,6})\s*minutes/i.exec(err.message)?.[1]);
  if (Number.isFinite(named) && named >= 45 && named < minutes) return named;
  return STEP_DOWN.find((m) => m < minutes);
}

/** Deletes on Graph, then the record. A failed DELETE keeps the record, so the next pass tries again. */
async function removeSubscription(deps: Deps, s: SubscriptionRecord, log: { warn: (m: string, f: Record<string, unknown>) => void }): Promise<boolean> {
  try {
    await deps.graph(s.tenantId).request({ method: "DELETE", url: `/subscriptions/${s.subscriptionId}` });
  } catch (e) {
    if (!isConnectorError(e, "GRAPH_NOT_FOUND")) {
      log.warn("subscription.delete.failed", { subscriptionId: s.subscriptionId, error: e });
      return false;
    }
  }
  await deps.state.deleteSubscription(s.subscriptionId);
  return true;
}

/**
 * The upkeep timer: enqueues an upkeep run for every enabled link whose subscriptions need
 * one (missing kind, renewal due, duplicates, not working). Links whose subscriptions are all
 * fine cost nothing but this scan.
 */
export async function enqueueSubscriptionUpkeep(deps: Deps, now = Date.now(), buckets?: [number, number]): Promise<{ links: number; enqueued: number }> {
  if (!deps.config.publicBaseUrl || !deps.config.secrets.webhookSecret) return { links: 0, enqueued: 0 };
  // One shard of the fan-out (src/app/schedule.ts) reads its links and their subscriptions only.
  const [links, subs] = await Promise.all([deps.state.listLinks({ state: "enabled", buckets }), deps.state.listSubscriptions({ buckets })]);
  const byLink = new Map<string, SubscriptionRecord[]>();
  for (const s of subs) byLink.set(s.linkId, [...(byLink.get(s.linkId) ?? []), s]);
  let n = 0;
  for (const link of links) {
    const mine = byLink.get(link.linkId) ?? [];
    let kinds: SubscriptionKind[];
    try { kinds = await neededKinds(deps, link); } catch { kinds = ["voicemail"]; }
    const due = link.subscriptionFallback
      || SUBSCRIPTION_KINDS.some((k) => (ofKind(mine, k).length > 0) !== kinds.includes(k) || ofKind(mine, k).length > 1)
      || mine.some((s) => renewalDue(s, now));
    if (!due) continue;
    await enqueueSync(deps.syncQueue, { linkId: link.linkId, kind: "subscriptions", reason: "scheduled", at: now });
    n++;
  }
  return { links: links.length, enqueued: n };
}
