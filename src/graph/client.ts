/**
 * Graph requests for the connector, on @microsoft/microsoft-graph-client: its default chain
 * retries 429/503/504 honouring Retry-After (RetryHandler); on top of it this module adds
 *  - a per-mailbox cap on requests in flight (Outlook allows 4 per app and mailbox:
 *    https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits),
 *  - `Prefer: IdType="ImmutableId"` so ids survive moves
 *    (https://learn.microsoft.com/en-us/graph/outlook-immutable-id),
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
}

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
    const limit = r.mailbox ? this.limitFor(r.mailbox) : undefined;
    const call = async () => {
      // Token first (cached by msal): a credential problem then surfaces as GRAPH_AUTH_FAILED
      // rather than wrapped in the client's generic error.
      await this.opts.tokens.token(this.opts.tenantId);
      this.stats.requests++;
      if (r.mailbox) this.stats.byMailbox.set(r.mailbox, (this.stats.byMailbox.get(r.mailbox) ?? 0) + 1);
      let req = this.client.api(r.url).header("Prefer", 'IdType="ImmutableId"');
      for (const [k, v] of Object.entries(r.headers ?? {})) req = k.toLowerCase() === "prefer" ? req.header("Prefer", `IdType="ImmutableId", ${v}`) : req.header(k, v);
      try {
        switch (r.method) {
          case "GET": return (r.binary ? Buffer.from(await req.responseType(ResponseType.ARRAYBUFFER).get() as ArrayBuffer) : await req.get()) as T;
          case "PUT": return (await req.put(r.body)) as T;
          case "POST": return (await req.post(r.body ?? {})) as T;
          case "PATCH": return (await req.patch(r.body ?? {})) as T;
          case "DELETE": return (await req.delete()) as T;
        }
      } catch (e) {
        throw toGraphError(e, { tenantId: this.opts.tenantId, mailboxId: r.mailbox });
      }
    };
    const bounded = () => withDeadline(call(), this.opts.requestTimeoutMs ?? GRAPH_REQUEST_DEADLINE_MS, "GRAPH_UNAVAILABLE", `Graph ${r.method} ${r.url.split("?")[0]}`, { tenantId: this.opts.tenantId, mailboxId: r.mailbox });
    return limit ? limit.run(bounded) : bounded();
  }

  private limitFor(mailbox: string): Semaphore {
    let s = this.limits.get(mailbox);
    if (!s) { s = new Semaphore(this.opts.maxConcurrencyPerMailbox); this.limits.set(mailbox, s); }
    return s;
  }
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
