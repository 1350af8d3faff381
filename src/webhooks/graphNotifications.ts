/**
 * Graph change and lifecycle notifications: validate, authenticate, turn into sync requests.
 *
 * - Validation: Graph POSTs `?validationToken=...`; answer 200, text/plain, the decoded
 *   token, within 10 s (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks#notificationurl-validation).
 * - Delivery: persist (enqueue) and answer 202 in well under 3 s; a 5xx makes Graph retry.
 * - clientState is checked in constant time on every item; forged or malformed items are
 *   dropped and counted, never acted on (same page, "Receive notifications").
 * - Lifecycle events (reauthorizationRequired, subscriptionRemoved, missed) arrive on the
 *   lifecycleNotificationUrl and carry no resource
 *   (https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events). Graph adds
 *   event names over time: an unknown one with a genuine clientState is kept (reason
 *   "graph-lifecycle", handled as a full reconcile), not treated as forged.
 * This module only checks the mac (stateless); src/app/webhooks.ts then checks subscription id,
 * link, kind, tenant and nonce together against the subscription record.
 */
import { z } from "zod";
import { ConnectorError } from "../errors.js";
import { verifyClientState } from "./clientState.js";

import { MAX_NOTIFICATION_BODY_BYTES } from "./limits.js";
export { MAX_NOTIFICATION_BODY_BYTES };

const changeNotification = z.object({
  subscriptionId: z.string().min(1).max(200),
  clientState: z.string().max(128).optional(),
  changeType: z.string().max(100).optional(),
  resource: z.string().max(2000).optional(),
  tenantId: z.string().max(100).optional(),
  subscriptionExpirationDateTime: z.string().max(100).optional(),
  lifecycleEvent: z.string().min(1).max(100).optional(),
  resourceData: z.object({ id: z.string().max(1000).optional() }).passthrough().optional(),
}).passthrough();

// Items are checked one by one: one odd item must not cost the genuine ones of its batch.
const collection = z.object({ value: z.array(z.unknown()).max(1000) }).passthrough();

export type SyncReason = "graph-change" | "graph-missed" | "graph-resubscribe" | "graph-reauthorize" | "graph-lifecycle";

/** One unit of work for the queue: sync this mailbox link (and maybe fix its subscription). */
export interface NotificationWork {
  linkId: string;
  /** What the subscription watches (voicemail folder, contacts, calendar). */
  kind: "voicemail" | "contacts" | "calendar" | "mail";
  subscriptionId: string;
  reason: SyncReason;
  tenantId?: string;
  /** The clientState's nonce (undefined: a subscription made before nonces). */
  nonce?: string;
  /** The lifecycle event as Graph named it (also when unknown to this version). */
  lifecycleEvent?: string;
  /**
   * A change notification's items: the changed item's id (resourceData.id) and the change type
   * Graph named, one per item of the batch (to tell the connector's own writes echoing back).
   */
  changes?: Array<{ id?: string; changeType?: string }>;
}

export interface NotificationResult {
  work: NotificationWork[];
  forged: number;
}

/** Returns the token to echo when the request is a validation request. */
export function validationToken(url: URL): string | undefined {
  const token = url.searchParams.get("validationToken");
  return token === null ? undefined : token; // URLSearchParams already decoded it
}

/**
 * Parses a notification POST body and keeps only genuine items, collapsed to one work item
 * per mailbox link and reason (Graph batches and duplicates notifications).
 */
export function parseNotifications(body: string, webhookSecret: string): NotificationResult {
  if (Buffer.byteLength(body) > MAX_NOTIFICATION_BODY_BYTES) throw new ConnectorError("PAYLOAD_TOO_LARGE", "notification body too large");
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new ConnectorError("BAD_REQUEST", "notification body is not JSON");
  }
  const parsed = collection.safeParse(json);
  if (!parsed.success) throw new ConnectorError("BAD_REQUEST", "notification body is not a change notification collection");
  const seen = new Map<string, NotificationWork>();
  let forged = 0;
  for (const item of parsed.data.value) {
    const one = changeNotification.safeParse(item);
    if (!one.success) { forged++; continue; }
    const n = one.data;
    const verified = verifyClientState(webhookSecret, n.clientState, n.tenantId);
    if (!verified) { forged++; continue; }
    const { linkId, kind } = parseSubject(verified.subject);
    const reason: SyncReason =
      n.lifecycleEvent === undefined ? "graph-change"
      : n.lifecycleEvent === "missed" ? "graph-missed"
      : n.lifecycleEvent === "subscriptionRemoved" ? "graph-resubscribe"
      : n.lifecycleEvent === "reauthorizationRequired" ? "graph-reauthorize"
      : "graph-lifecycle";
    // One per subscription and reason: each item's subscription is checked on its own.
    const key = `${n.subscriptionId}|${linkId}|${kind}|${reason}|${verified.nonce ?? ""}|${n.tenantId ?? ""}`;
    if (!seen.has(key)) seen.set(key, { linkId, kind, subscriptionId: n.subscriptionId, reason, tenantId: n.tenantId, nonce: verified.nonce, ...(n.lifecycleEvent ? { lifecycleEvent: n.lifecycleEvent } : {}) });
    if (reason === "graph-change") (seen.get(key)!.changes ??= []).push({ id: n.resourceData?.id, changeType: n.changeType });
  }
  return { work: [...seen.values()], forged };
}

/** The clientState subject: `<linkId>` for the voicemail folder, `<linkId>|<kind>` otherwise. */
export function subscriptionSubject(linkId: string, kind: NotificationWork["kind"]): string {
  return kind === "voicemail" ? linkId : `${linkId}|${kind}`;
}

function parseSubject(subject: string): { linkId: string; kind: NotificationWork["kind"] } {
  const bar = subject.lastIndexOf("|");
  const kind = bar > 0 ? subject.slice(bar + 1) : "";
  return kind === "contacts" || kind === "calendar" || kind === "mail" ? { linkId: subject.slice(0, bar), kind } : { linkId: subject, kind: "voicemail" };
}
