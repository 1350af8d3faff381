/**
 * The "sync-mailbox" queue: one message asks for one run of one mailbox link. Messages are
 * base64 JSON, the Functions host's default encoding for queue triggers
 * (https://learn.microsoft.com/en-us/azure/azure-functions/functions-bindings-storage-queue#host-json).
 */
import type { QueueClient } from "@azure/storage-queue";
import { z } from "zod";
import { ConnectorError } from "../errors.js";

export const syncRequestSchema = z.object({
  linkId: z.string().min(1).max(200),
  reason: z.enum(["graph-change", "graph-missed", "graph-resubscribe", "graph-reauthorize", "graph-lifecycle", "store-change", "poll", "fast-read", "reconcile", "follow-up", "admin", "scheduled", "renewals"]),
  /** What to sync; absent means voicemail (messages queued before other kinds existed).
   *  "subscriptions": Graph subscription upkeep of the link (src/app/subscriptions.ts). */
  kind: z.enum(["voicemail", "contacts", "calendar", "location", "subscriptions", "schedule", "mail", "mirror"]).optional(),
  /** kind "schedule": one shard of a timer's fan-out (src/app/schedule.ts), shard of shards. */
  shard: z.number().int().min(0).max(1023).optional(),
  shards: z.number().int().min(1).max(1024).optional(),
  /** Subscription upkeep: the subscription a lifecycle event named, and its kind. */
  subscriptionId: z.string().min(1).max(200).optional(),
  subscriptionKind: z.enum(["voicemail", "contacts", "calendar", "mail"]).optional(),
  /** Unix ms when the trigger happened (latency measurement). */
  at: z.number().optional(),
  /** Retries so far of a run put off because its voice store was busy or away. */
  attempt: z.number().int().min(0).max(100).optional(),
});
export type SyncRequest = z.infer<typeof syncRequestSchema>;
export type SyncKind = NonNullable<SyncRequest["kind"]>;

export async function enqueueSync(queue: QueueClient, req: SyncRequest, delaySeconds = 0): Promise<void> {
  try {
    await queue.sendMessage(Buffer.from(JSON.stringify(req)).toString("base64"), delaySeconds ? { visibilityTimeout: delaySeconds } : undefined);
  } catch (e) {
    throw new ConnectorError("STATE_UNAVAILABLE", "could not enqueue a sync request", { mailboxId: req.linkId, cause: e, transient: true });
  }
}

export function parseSyncRequest(message: unknown): SyncRequest {
  const r = syncRequestSchema.safeParse(message);
  if (!r.success) throw new ConnectorError("BAD_REQUEST", "queue message is not a sync request", { transient: false });
  return r.data;
}
