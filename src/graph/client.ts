/**
 * Graph requests for the connector, on @microsoft/microsoft-graph-client: its default chain
 * retries 429/503/504 honouring Retry-After (RetryHandler); on top of it this module adds
 *  - a per-mailbox cap on requests in flight (Outlook allows 4 per app and mailbox:
 *    https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits),
 *  - `Prefer: IdType="ImmutableId"` so ids survive moves
 *    (https://learn.microsoft.com/en-us/graph/outlook-immutable-id),
 *  - small writes to one mailbox that wait together sent as one JSON batch (src/graph/batch.ts),
 *  - request counting per mailbox, and
 *  - mapping of every failure to a typed ConnectorError.
 */
import {
  AuthenticationHandler, Client, CustomAuthenticationProvider, GraphError, HTTPMessageHandler, RedirectHandler,
  RedirectHandlerOptions, ResponseType, RetryHandler, RetryHandlerOptions, TelemetryHandler,
} from "@microsoft/microsoft-graph-client";
import { ConnectorError } from "../errors.js";
import type { TokenSource } from "./auth.js";
import { GRAPH_REQUEST_DEADLINE_MS, withDeadline } from "../timeouts.js";
import { Semaphore } from "../semaphore.js";
import { chainedBatch, itemOutcome, MAX_BATCH_ITEMS, type BatchItemAnswer } from "./batch.js";

export interface GraphRequest {
  method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE";
  /** A path under /v1.0 or an absolute nextLink/deltaLink. */
  url: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** The mailbox this request touches (for the concurrency cap and the counters). */
  mailbox?: string;
  /** GET: the answer's bytes rather than JSON (media such as a contact photo's `$value`). */
  binary?: boolean;
  /**
   * A small JSON request (a read flag, a contact) that may travel in a JSON batch with others
   * of the same mailbox that wait for a slot at the same time (src/graph/batch.ts). A request
   * that waits alone is sent as it is.
   */
  batchable?: boolean;
}

/** A batchable request waiting for its mailbox's slot. */
interface Waiting {
  r: GraphRequest;
  resolve(value: unknown): void;
  reject(e: unknown): void;
  /** Times it was answered "throttled" or "unavailable" in a batch. */
  retries: number;
}

/** Times a batch item answered 429/503/504 is sent again, as the SDK's RetryHandler does for a request. */
const BATCH_ITEM_RETRIES = 3;

/** Longest Retry-After waited out inside a request; longer ones end the run (requeued). */
export const MAX_INLINE_RETRY_AFTER_SECONDS = 10;

export interface GraphStats {
  requests: number;
  byMailbox: Map<string, number>;
}

export class GraphClient {
  readonly stats: GraphStats = { requests: 0, byMailbox: new Map() };
  private readonly client: Client;
  private readonly limits = new Map<string, Semaphore>();
  private readonly waiting = new Map<string, Waiting[]>();

  constructor(private readonly opts: { baseUrl: string; tenantId: string; tokens: TokenSource; maxConcurrencyPerMailbox: number; requestTimeoutMs?: number }) {
    const host = new URL(opts.baseUrl).hostname;
    const auth = new CustomAuthenticationProvider((done) => { opts.tokens.token(opts.tenantId).then((t) => done(null, t), (e: Error) => done(e, null)); });
    // The SDK's default chain, with one change to the retry rule: short Retry-After waits
    // (concurrency, bursts) are retried in place; long ones (the 10-minute mailbox budget is
    // spent) come back as GRAPH_THROTTLED so the run ends and is requeued for later, instead
    // of a function sleeping for minutes (https://learn.microsoft.com/en-us/graph/throttling).
    const retry = new RetryHandler(new RetryHandlerOptions(1, 3, (_delay, _attempt, _req, _opts, response) => Number(response.headers.get("retry-after") ?? 0) <= MAX_INLINE_RETRY_AFTER_SECONDS));
    this.client = Client.initWithMiddleware({
      baseUrl: opts.baseUrl,
      customHosts: host === "graph.microsoft.com" ? undefined : new Set([host]),
      middleware: [new AuthenticationHandler(auth), retry, new RedirectHandler(new RedirectHandlerOptions()), new TelemetryHandler(), new HTTPMessageHandler()],
    });
  }

  async request<T = Record<string, unknown>>(r: GraphRequest): Promise<T> {
    if (r.batchable && r.mailbox) return this.enqueue<T>(r, r.mailbox);
    const limit = r.mailbox ? this.limitFor(r.mailbox) : undefined;
    return limit ? limit.run(() => this.send<T>(r)) : this.send<T>(r);
  }

  /** One request, within the request deadline. */
  private send<T>(r: GraphRequest): Promise<T> {
    return this.exchange(`Graph ${r.method} ${r.url.split("?")[0]}`, r.mailbox, 1, async () => {
      let req = this.client.api(r.url);
      for (const [k, v] of Object.entries(withImmutableIds(r.headers))) req = req.header(k, v);
      switch (r.method) {
        case "GET": return (r.binary ? Buffer.from(await req.responseType(ResponseType.ARRAYBUFFER).get() as ArrayBuffer) : await req.get()) as T;
        case "PUT": return (await req.put(r.body)) as T;
        case "POST": return (await req.post(r.body ?? {})) as T;
        case "PATCH": return (await req.patch(r.body ?? {})) as T;
        case "DELETE": return (await req.delete()) as T;
      }
    });
  }

  /**
   * What every round trip to Graph shares, a request's or a batch's: the token first (cached by
   * msal: a credential problem then surfaces as GRAPH_AUTH_FAILED rather than wrapped in the
   * client's generic error), `requests` counted against the mailbox, failures typed, the deadline.
   */
  private exchange<T>(what: string, mailbox: string | undefined, requests: number, work: () => Promise<T>): Promise<T> {
    const ids = { tenantId: this.opts.tenantId, mailboxId: mailbox };
    const call = async () => {
      await this.opts.tokens.token(this.opts.tenantId);
      this.count(mailbox, requests);
      try {
        return await work();
      } catch (e) {
        throw toGraphError(e, ids);
      }
    };
    // One deadline for a batch too: a request's is generous (60 s) against the seconds 20 items take.
    return withDeadline(call(), this.opts.requestTimeoutMs ?? GRAPH_REQUEST_DEADLINE_MS, "GRAPH_UNAVAILABLE", what, ids);
  }

  /** Every request counts against the mailbox's budget, batch items one by one. */
  private count(mailbox: string | undefined, n: number) {
    this.stats.requests += n;
    if (mailbox) this.stats.byMailbox.set(mailbox, (this.stats.byMailbox.get(mailbox) ?? 0) + n);
  }

  /**
   * A batchable request waits in its mailbox's list and asks for a slot; whoever gets a slot
   * takes its share of what waits then (up to 20) and sends it: alone as a plain request, several as one
   * chained batch. Every waiting request has asked for one slot, so every one is taken by
   * some slot; a slot that finds the list empty (its request went with an earlier batch) passes.
   */
  private enqueue<T>(r: GraphRequest, mailbox: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waitingFor(mailbox).push({ r, resolve: resolve as (v: unknown) => void, reject, retries: 0 });
      void this.limitFor(mailbox).run(() => this.drain(mailbox));
    });
  }

  private waitingFor(mailbox: string): Waiting[] {
    let list = this.waiting.get(mailbox);
    if (!list) { list = []; this.waiting.set(mailbox, list); }
    return list;
  }

  private async drain(mailbox: string): Promise<void> {
    const list = this.waiting.get(mailbox);
    if (!list?.length) return;
    // What waits is shared among the mailbox's slots (a batch runs its items one after the
    // other in one slot): one long chain would leave the other slots idle.
    const taken = list.splice(0, Math.min(MAX_BATCH_ITEMS, Math.ceil(list.length / this.opts.maxConcurrencyPerMailbox)));
    if (!list.length) this.waiting.delete(mailbox);
    // Nothing may escape a slot's work unseen: each taken request settles, whatever happens.
    await this.sendTaken(mailbox, taken).catch((e: unknown) => { for (const w of taken) w.reject(e); });
  }

  private async sendTaken(mailbox: string, taken: Waiting[]): Promise<void> {
    if (taken.length === 1) {
      const w = taken[0]!;
      await this.send(w.r).then(w.resolve, w.reject);
      return;
    }
    let answers: BatchItemAnswer[];
    try {
      answers = await this.sendBatch(taken.map((w) => w.r), mailbox);
    } catch (e) {
      for (const w of taken) w.reject(e);
      return;
    }
    const byId = new Map(answers.map((a) => [String(a.id), a]));
    const again: Waiting[] = [];
    let waitSeconds = 0;
    const ids = { tenantId: this.opts.tenantId, mailboxId: mailbox };
    taken.forEach((w, i) => {
      const outcome = itemOutcome(byId.get(String(i + 1)));
      switch (outcome.kind) {
        case "done": w.resolve(outcome.value); return;
        case "notRun":
          // The chain's first item depends on nothing, so it always has an answer; without one
          // the batch answer is not Graph's, and sending the chain again would loop.
          if (i === 0) { w.reject(new ConnectorError("GRAPH_UNAVAILABLE", `Graph $batch answer without its first item (${answers.length} answers for ${taken.length})`, ids)); return; }
          again.push(w);
          return;
        case "failed": w.reject(toGraphError(outcome.error, ids)); return;
        case "retry":
          // As for a plain request (the constructor's retry rule): short waits are retried in
          // place, a long one ends the run as GRAPH_THROTTLED.
          if (w.retries >= BATCH_ITEM_RETRIES || outcome.retryAfterSeconds > MAX_INLINE_RETRY_AFTER_SECONDS) { w.reject(toGraphError(outcome.error, ids)); return; }
          w.retries++;
          waitSeconds = Math.max(waitSeconds, outcome.retryAfterSeconds);
          again.push(w);
      }
    });
    if (!again.length) return;
    // Waited out in the slot, as the SDK's RetryHandler waits inside a request.
    if (waitSeconds > 0) await new Promise((r) => setTimeout(r, waitSeconds * 1000));
    // Back at the head of the line, each with its own slot to ask for (as when it came).
    this.waitingFor(mailbox).unshift(...again);
    for (let i = 0; i < again.length; i++) void this.limitFor(mailbox).run(() => this.drain(mailbox));
  }

  private sendBatch(items: GraphRequest[], mailbox: string): Promise<BatchItemAnswer[]> {
    const chain = chainedBatch(items.map((r) => ({ ...r, headers: withImmutableIds(r.headers) })));
    return this.exchange(`Graph $batch of ${items.length}`, mailbox, items.length, async () => ((await this.client.api("/$batch").post(chain)) as { responses?: BatchItemAnswer[] }).responses ?? []);
  }

  private limitFor(mailbox: string): Semaphore {
    let s = this.limits.get(mailbox);
    if (!s) { s = new Semaphore(this.opts.maxConcurrencyPerMailbox); this.limits.set(mailbox, s); }
    return s;
  }
}

/**
 * The caller's headers with `Prefer: IdType="ImmutableId"` (a caller's own Prefer joins it). "This
 * header only applies to the request it is included with"
 * (https://learn.microsoft.com/en-us/graph/outlook-immutable-id): every request carries it, each
 * batch item too.
 */
function withImmutableIds(headers: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = { Prefer: 'IdType="ImmutableId"' };
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === "prefer") out.Prefer = `IdType="ImmutableId", ${v}`;
    else out[k] = v;
  }
  return out;
}

export function toGraphError(e: unknown, ids: { tenantId?: string; mailboxId?: string }): ConnectorError {
  if (e instanceof ConnectorError) return e;
  if (e instanceof GraphError) {
    const status = e.statusCode;
    const code = e.code ?? "";
    const msg = `Graph ${status} ${code}: ${(e.message ?? "").slice(0, 300)}`;
    const requestId = e.requestId ?? undefined;
    if (status === 410 || /syncStateNotFound|resyncRequired|SyncStateInvalid/i.test(code)) return new ConnectorError("DELTA_TOKEN_EXPIRED", msg, { ...ids, requestId, cause: e });
    if (status === 401) return new ConnectorError("GRAPH_AUTH_FAILED", msg, { ...ids, requestId, cause: e, transient: false });
    if (status === 403) return new ConnectorError("FORBIDDEN", msg, { ...ids, requestId, cause: e });
    // The user was deleted (ErrorInvalidUser, or a user resource that is gone), or has no mailbox
    // any more (unlicensed, mailbox removed: MailboxNotEnabledForRESTAPI)
    // (https://learn.microsoft.com/en-us/graph/errors; graph-facts.md): no retry helps, the link waits for a person.
    if (status === 404 && /^(ErrorInvalidUser|MailboxNotEnabledForRESTAPI)$/i.test(code)) return new ConnectorError("UNKNOWN_USER", msg, { ...ids, requestId, cause: e, transient: false });
    if (status === 404) return new ConnectorError("GRAPH_NOT_FOUND", msg, { ...ids, requestId, cause: e });
    if (status === 409) return new ConnectorError("CONFLICT", msg, { ...ids, requestId, cause: e });
    if (status === 413) return new ConnectorError("PAYLOAD_TOO_LARGE", msg, { ...ids, requestId, cause: e });
    if (status === 429) {
      const retryAfter = Number((e.headers as Headers | undefined)?.get?.("retry-after") ?? 5);
      return new ConnectorError("GRAPH_THROTTLED", msg, { ...ids, requestId, cause: e, retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : 5 });
    }
    if (status >= 500 || status === -1) return new ConnectorError("GRAPH_UNAVAILABLE", msg, { ...ids, requestId, cause: e });
    return new ConnectorError("GRAPH_REQUEST_FAILED", msg, { ...ids, requestId, cause: e });
  }
  // Network failures (fetch failed, ECONNREFUSED, TLS) are worth a retry later.
  return new ConnectorError("GRAPH_UNAVAILABLE", `Graph request failed: ${(e as Error)?.message ?? String(e)}`, { ...ids, cause: e });
}
