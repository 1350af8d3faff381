/**
 * Graph JSON batching (https://learn.microsoft.com/en-us/graph/json-batching): up to 20
 * requests in one `POST /$batch`, each answered with its own status, headers and body.
 *
 * Why the items of one batch are chained with `dependsOn`: Outlook runs at most 4 requests per
 * app and mailbox at once, and the items of a batch count one by one against that limit
 * (https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits; Graph
 * hands up to four items of a batch to Outlook at once, so a batch of 20 independent items to
 * one mailbox has most of them answered 429 MailboxConcurrency:
 * https://learn.microsoft.com/en-us/answers/questions/1660054). A chain runs its items one after
 * the other, so a batch takes one of the mailbox's 4 slots, like a single request, and saves
 * the round trip of every item but the first. The price of a chain: once an item fails, the
 * items after it are answered 424 Failed Dependency without being run; they are sent again.
 *
 * Pure helpers: the payload and the reading of one item's answer. The sending, retrying and
 * the per-mailbox queue live in src/graph/client.ts.
 */
import { GraphError } from "@microsoft/microsoft-graph-client";
import type { GraphRequest } from "./client.js";

/** Graph takes at most 20 requests in one batch (json-batching, "Batch size limitations"). */
export const MAX_BATCH_ITEMS = 20;

/** One item of a batch's answer (json-batching, "Response format"). */
export interface BatchItemAnswer {
  id: string;
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

export type BatchItemOutcome =
  | { kind: "done"; value: unknown }
  /** Not run: an item before it in the chain failed (424). Send it again as it is. */
  | { kind: "notRun" }
  /** Throttled or briefly unavailable (429, 503, 504): worth sending again after `retryAfterSeconds`. */
  | { kind: "retry"; retryAfterSeconds: number; error: GraphError }
  /** Any other failure: the item's own, as the client's error mapping sees a plain request's. */
  | { kind: "failed"; error: GraphError };

/** The batch body: items in the given order, each depending on the one before it. */
export function chainedBatch(items: readonly GraphRequest[]): { requests: Array<Record<string, unknown>> } {
  return {
    requests: items.map((r, i) => {
      // The client gives each item its headers (Prefer: IdType="ImmutableId" among them).
      const headers: Record<string, string> = { ...r.headers };
      // An item with a body must say its content type (json-batching, "Request format").
      if (r.body !== undefined) headers["Content-Type"] ??= "application/json";
      return {
        id: String(i + 1),
        method: r.method,
        url: r.url,
        ...(i > 0 ? { dependsOn: [String(i)] } : {}),
        headers,
        ...(r.body !== undefined ? { body: r.body } : {}),
      };
    }),
  };
}

/** What one item's answer means for its caller. */
export function itemOutcome(answer: BatchItemAnswer | undefined): BatchItemOutcome {
  if (!answer) return { kind: "notRun" };
  if (answer.status >= 200 && answer.status < 300) return { kind: "done", value: answer.body ?? {} };
  if (answer.status === 424) return { kind: "notRun" };
  const headers = new Headers(answer.headers ?? {});
  const body = (answer.body ?? {}) as { error?: { code?: string; message?: string; innerError?: Record<string, string> } };
  const error = new GraphError(answer.status, body.error?.message ?? `batch item answered ${answer.status}`);
  error.code = body.error?.code ?? null;
  error.requestId = body.error?.innerError?.["request-id"] ?? null;
  error.headers = headers;
  error.body = answer.body;
  if (answer.status === 429 || answer.status === 503 || answer.status === 504) {
    const after = Number(headers.get("retry-after") ?? 1);
    return { kind: "retry", retryAfterSeconds: Number.isFinite(after) && after >= 0 ? after : 1, error };
  }
  return { kind: "failed", error };
}
