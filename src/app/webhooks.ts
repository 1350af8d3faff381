/**
 * HTTP webhook handling, independent of the Functions types so it can be tested directly:
 * authenticate, turn into sync requests, enqueue, answer fast.
 */
import type { HttpResponseInit } from "@azure/functions";
import { isConnectorError } from "../errors.js";
import { parseNotifications, validationToken, type NotificationWork } from "../webhooks/graphNotifications.js";
import { verifyStoreNotification } from "../webhooks/storeNotifications.js";
import type { Deps } from "./deps.js";
import { enqueueSync, type SyncRequest } from "./syncQueue.js";
import { requestChangeRun } from "./linkRun.js";

const REASON: Record<NotificationWork["reason"], SyncRequest["reason"]> = {
  "graph-change": "graph-change", "graph-missed": "graph-missed", "graph-resubscribe": "graph-resubscribe", "graph-reauthorize": "graph-reauthorize",
};

function errorResponse(e: unknown, deps?: Deps, what?: string): HttpResponseInit {
  if (isConnectorError(e) && e.httpStatus < 500) {
    // The caller learns the code only; the log says why (never the body or the signature).
    if (deps && what) deps.log.warn(`${what}.refused`, { code: e.code, reason: e.message, endpoint: e.ids.endpoint });
    return { status: e.httpStatus, jsonBody: { error: e.code } };
  }
  throw e;
}

export async function handleGraphNotification(deps: Deps, url: URL, body: string, kind: "change" | "lifecycle"): Promise<HttpResponseInit> {
  const token = validationToken(url);
  // Validation: echo the decoded token as text/plain within 10 s (change-notifications-delivery-webhooks).
  if (token !== undefined) return { status: 200, headers: { "content-type": "text/plain", "x-content-type-options": "nosniff" }, body: token };
  const secret = deps.config.secrets.webhookSecret;
  if (!secret) return { status: 503, jsonBody: { error: "webhooks are not configured" } };
  try {
    const { work, forged } = parseNotifications(body, secret);
    if (forged) deps.log.warn("graph.notification.forged", { kind, forged });
    const at = Date.now();
    // Graph deleted these subscriptions: forget them now, so whichever run comes next (even a
    // coalesced follow-up) sees the link without a subscription and creates a new one.
    for (const w of work) if (w.reason === "graph-resubscribe") await deps.state.deleteSubscription(w.subscriptionId);
    // Enqueue, then 202: a failure to enqueue answers 5xx so Graph retries.
    await Promise.all(work.map((w) => {
      const req: SyncRequest = { linkId: w.linkId, ...(w.kind === "voicemail" ? {} : { kind: w.kind }), reason: REASON[w.reason], at };
      // Lifecycle events need their own run (a full comparison, a new subscription).
      return w.reason === "graph-change" ? requestChangeRun(deps, req) : enqueueSync(deps.syncQueue, req);
    }));
    return { status: 202 };
  } catch (e) {
    return errorResponse(e, deps, "graph.notification");
  }
}

export async function handleStoreNotification(deps: Deps, endpointId: string, body: string, timestamp: string | null, signature: string | null): Promise<HttpResponseInit> {
  try {
    // The endpoint's own secret: an unknown endpoint, or one without a secret yet, gets the same
    // 401 as a bad signature (nothing to learn about which endpoints exist). Polling still syncs.
    const keys = (await deps.directory()).signingKeys(endpointId);
    const events = verifyStoreNotification({ keys, endpointId, body, timestampHeader: timestamp, signatureHeader: signature, nowSeconds: Math.floor(Date.now() / 1000), replay: deps.storeReplay });
    const at = Date.now();
    // One run per user and kind: a change in the contacts folder syncs contacts, anything
    // else the voice messages. The calendar folder is a one-way mirror of Exchange: the store's
    // own changes there (our writes echoing back) need no run.
    const byUser = new Map<string, Set<string | undefined>>();
    for (const e of events) {
      const u = e.user.toLowerCase();
      if (!byUser.has(u)) byUser.set(u, new Set());
      byUser.get(u)!.add(e.mailbox);
    }
    for (const [user, folders] of byUser) {
      const link = await deps.state.findLinkByVoice(endpointId, user);
      if (link?.state !== "enabled") continue;
      const profile = (await deps.directory()).linkProfile(link);
      const kinds = new Set<"voicemail" | "contacts">();
      for (const f of folders) {
        const folder = (f ?? "INBOX").toLowerCase();
        if (profile.contacts.enabled && folder === profile.contacts.folder.toLowerCase()) kinds.add("contacts");
        else if (!(profile.calendar.enabled && folder === profile.calendar.folder.toLowerCase())) kinds.add("voicemail");
      }
      for (const kind of kinds) await requestChangeRun(deps, { linkId: link.linkId, ...(kind === "voicemail" ? {} : { kind }), reason: "store-change", at });
    }
    return { status: 202 };
  } catch (e) {
    return errorResponse(e, deps, "store.notification");
  }
}
