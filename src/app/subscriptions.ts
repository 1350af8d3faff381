/**
 * Graph subscriptions of a mailbox link, one per watched resource: the voicemail folder's
 * messages, the contact folder, the calendar's events. Each carries a clientState naming the
 * link and the kind (src/webhooks/clientState.ts), so a notification becomes a sync request
 * without a state lookup.
 */
import { ConnectorError, ensureConnectorError, isConnectorError } from "../errors.js";
import type { MailboxLink, SubscriptionRecord } from "../state/stateStore.js";
import { makeClientState } from "../webhooks/clientState.js";
import { subscriptionSubject, type NotificationWork } from "../webhooks/graphNotifications.js";
import type { Deps } from "./deps.js";
import { enqueueSync, type SyncRequest } from "./syncQueue.js";

/** Outlook subscriptions live at most 10,080 minutes; ask for a little less (graph-facts.md section 1). */
export const SUBSCRIPTION_MINUTES = 10_080 - 60;

export type SubscriptionKind = NotificationWork["kind"];

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

export function kindOfResource(resource: string): SubscriptionKind {
  if (/\/contacts$/i.test(resource)) return "contacts";
  if (/\/events$/i.test(resource)) return "calendar";
  return "voicemail";
}

const ofKind = (subs: SubscriptionRecord[], kind: SubscriptionKind) => subs.filter((s) => kindOfResource(s.resource) === kind);

/** Creates the subscription when the link has none of this kind, or when a lifecycle event asked. */
export async function keepSubscription(deps: Deps, link: MailboxLink, req: SyncRequest, spec: SubscriptionSpec): Promise<void> {
  const lifecycle = req.reason === "graph-resubscribe" || req.reason === "graph-reauthorize";
  if (lifecycle || !ofKind(await deps.state.listSubscriptions({ linkId: link.linkId }), spec.kind).length) {
    await ensureSubscription(deps, link, spec, req.reason === "graph-reauthorize");
  }
}

/** Creates (or recreates) the link's subscription of this kind. */
export async function ensureSubscription(deps: Deps, link: MailboxLink, spec: SubscriptionSpec, reauthorizeOnly = false): Promise<void> {
  const { publicBaseUrl } = deps.config;
  const secret = deps.config.secrets.webhookSecret;
  if (!publicBaseUrl || !secret) return; // no public endpoint (tests without webhooks): timers and store push still work
  const graph = deps.graph(link.tenantId);
  const existing = ofKind(await deps.state.listSubscriptions({ linkId: link.linkId }), spec.kind);
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
  const created = await graph.request<{ id: string; expirationDateTime: string }>({
    method: "POST", url: "/subscriptions",
    body: {
      changeType: spec.changeType, resource: spec.resource, expirationDateTime: expiration,
      notificationUrl: `${publicBaseUrl}/api/graph/notifications`, lifecycleNotificationUrl: `${publicBaseUrl}/api/graph/lifecycle`,
      clientState: makeClientState(secret, subscriptionSubject(link.linkId, spec.kind)),
    },
  }).catch((e) => { throw new ConnectorError("SUBSCRIPTION_FAILED", `${spec.kind} subscription for ${link.linkId} failed: ${ensureConnectorError(e).message}`, { mailboxId: link.linkId, tenantId: link.tenantId, cause: e, transient: ensureConnectorError(e).transient }); });
  await deps.state.putSubscription({ subscriptionId: created.id, linkId: link.linkId, tenantId: link.tenantId, resource: spec.resource, expiresAt: new Date(created.expirationDateTime).toISOString(), status: "active" });
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
        const kind = kindOfResource(s.resource);
        await enqueueSync(deps.syncQueue, { linkId: s.linkId, ...(kind === "voicemail" ? {} : { kind }), reason: "graph-resubscribe", at: Date.now() });
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
