/**
 * The one error vocabulary of umconnect.
 *
 * Every failure that crosses a module boundary is a ConnectorError with a `code` from
 * ErrorCode, a `transient` flag that drives retries (queue redelivery, backoff) and the ids an
 * operator needs to act. Adapters convert library failures (imapflow codes and `false`
 * returns, Graph HTTP status + error code, Table Storage status) at the edge; nothing above
 * them sees a raw library error.
 */

export type ErrorCode =
  // configuration and input
  | "CONFIG_INVALID"
  | "BAD_REQUEST"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "CONFLICT"
  | "PAYLOAD_TOO_LARGE"
  // state store
  | "STATE_CONFLICT" // optimistic concurrency: the row changed under us (HTTP 412) or already exists (409)
  | "STATE_UNAVAILABLE"
  | "STATE_CORRUPT" // one stored item row cannot be read (wrong types, missing key): that item is skipped and shown, the run goes on
  | "LEASE_HELD"
  | "LEASE_LOST" // our run's lease could not be renewed in time: the run stops before its next write
  // Graph
  | "GRAPH_AUTH_FAILED"
  | "GRAPH_THROTTLED"
  | "GRAPH_UNAVAILABLE"
  | "GRAPH_REQUEST_FAILED"
  | "GRAPH_NOT_FOUND"
  | "DELTA_TOKEN_EXPIRED"
  | "SUBSCRIPTION_FAILED"
  // IMAP
  | "IMAP_AUTH_FAILED"
  | "IMAP_CONNECTION_LIMIT"
  | "IMAP_UNAVAILABLE"
  | "IMAP_TLS_FAILED"
  | "IMAP_COMMAND_FAILED"
  | "IMAP_UIDVALIDITY_CHANGED"
  // content
  | "MIME_MALFORMED"
  | "AUDIO_MISSING"
  | "AUDIO_UNSUPPORTED"
  | "AUDIO_UNDECODABLE" // ffmpeg could not decode the recording (corrupt, truncated, wrong type) or took too long
  | "AUDIO_TOO_LONG" // the recording is longer than the transcoding cap
  | "VCARD_MALFORMED"
  | "ICALENDAR_MALFORMED"
  | "CALENDAR_EVENT_UNUSABLE" // one Exchange event without a usable time or zone: skipped with this reason, the rest mirrors
  | "CONTACT_VALUE_REFUSED" // a contact value Graph would refuse: normalised or left out of Exchange (kept in the extras), the item flagged
  | "CALLBACK_FAILED" // the voice system's own HTTP callback (UC location) failed
  // sync safety
  | "MASS_DELETE_REFUSED"
  | "UNKNOWN_USER"
  // tenant isolation: a link, endpoint and profile of different tenants (docs/security.md)
  | "TENANT_BOUNDARY"
  | "INTERNAL";

/** Ids that locate a failure; all optional, never content. */
export interface ErrorIds {
  tenantId?: string;
  mailboxId?: string;
  syncKey?: string;
  graphId?: string;
  imapUid?: number;
  endpoint?: string;
  subscriptionId?: string;
  requestId?: string;
}

export interface ConnectorErrorOptions extends ErrorIds {
  transient?: boolean;
  cause?: unknown;
  /** Seconds the caller should wait before retrying (Graph Retry-After, lease expiry). */
  retryAfterSeconds?: number;
  /** HTTP status the error maps to at an HTTP boundary. */
  httpStatus?: number;
  /** Several problems reported at once (config validation, CSV import). */
  problems?: string[];
}

/** Codes that are transient unless the thrower says otherwise. */
const TRANSIENT_BY_DEFAULT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "STATE_UNAVAILABLE",
  "LEASE_HELD",
  "LEASE_LOST",
  "GRAPH_THROTTLED",
  "GRAPH_UNAVAILABLE",
  "IMAP_CONNECTION_LIMIT",
  "IMAP_UNAVAILABLE",
]);

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  CONFIG_INVALID: 500,
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  UNKNOWN_USER: 404,
  CONFLICT: 409,
  STATE_CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  TENANT_BOUNDARY: 403,
  GRAPH_THROTTLED: 429,
  LEASE_HELD: 409,
  LEASE_LOST: 409,
  STATE_UNAVAILABLE: 503,
  GRAPH_UNAVAILABLE: 503,
  IMAP_UNAVAILABLE: 503,
};

export class ConnectorError extends Error {
  override readonly name = "ConnectorError";
  readonly code: ErrorCode;
  readonly transient: boolean;
  readonly ids: ErrorIds;
  readonly retryAfterSeconds?: number;
  readonly httpStatus: number;
  readonly problems: string[];

  constructor(code: ErrorCode, message: string, options: ConnectorErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const { transient, cause: _cause, retryAfterSeconds, httpStatus, problems, ...ids } = options;
    this.code = code;
    this.transient = transient ?? TRANSIENT_BY_DEFAULT.has(code);
    this.ids = ids;
    this.retryAfterSeconds = retryAfterSeconds;
    this.httpStatus = httpStatus ?? HTTP_STATUS[code] ?? 500;
    this.problems = problems ?? [];
  }

  /** A log-safe summary: code, message, ids. Never includes the cause's payloads. */
  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      transient: this.transient,
      ...this.ids,
      ...(this.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: this.retryAfterSeconds }),
      ...(this.problems.length ? { problems: this.problems } : {}),
    };
  }
}

export function isConnectorError(e: unknown, code?: ErrorCode): e is ConnectorError {
  return e instanceof ConnectorError && (code === undefined || e.code === code);
}

/** Wraps anything caught into a ConnectorError, keeping an existing one as is. */
export function ensureConnectorError(e: unknown, fallback: ErrorCode = "INTERNAL", ids: ErrorIds = {}): ConnectorError {
  if (e instanceof ConnectorError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new ConnectorError(fallback, message, { ...ids, cause: e });
}
