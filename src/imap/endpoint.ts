/**
 * Voice-store endpoints and connections: auth modes, TLS, a cap on connections per endpoint,
 * and the one place imapflow failures become typed errors.
 *
 * Auth modes (GLOSSARY "super user"): the user's own password; a master user with a
 * separator ("user*master", Dovecot's auth_master_user_separator); or SASL PLAIN with an
 * authorization identity (RFC 4616 section 2: authcid = master, authzid = user).
 */
import tls from "node:tls";
import { ImapFlow } from "imapflow";
import { ConnectorError } from "../errors.js";
import { judgeLoginRefusal } from "./loginAnswers.js";
import { withDeadline } from "../timeouts.js";

export type ImapAuth =
  | { mode: "user-password"; password: string }
  | { mode: "master-separator"; masterUser: string; password: string; separator?: string }
  | { mode: "sasl-authzid"; masterUser: string; password: string };

export interface ImapEndpoint {
  id: string;
  host: string;
  port: number;
  /** Plaintext only when configured explicitly (labs); TLS verification is always on otherwise. */
  tls: "implicit" | "starttls" | "plaintext";
  caBundle?: string;
  auth: ImapAuth;
  maxConnections: number;
  connectTimeoutMs?: number;
  /** Waiting longer than this for a free connection reads as IMAP_CONNECTION_LIMIT. */
  acquireTimeoutMs?: number;
  /** Base wait before a rejected credential is tried again (src/app/credentialGate.ts). */
  authRetrySeconds?: number;
  /** Logins with one credential in flight at once per instance (src/app/credentialGate.ts); default 1. */
  loginsAtOnce?: number;
  /** Quiet this long: a NOOP; quiet as long again: the connection is dropped (imapflow's socketTimeout). */
  silenceTimeoutMs?: number;
  /** Links log in with their own passwords (src/app/credentials.ts); auth.password may be "". */
  passwordPerLink?: boolean;
  /** Connections the store allows per user / per client address, across all instances (src/app/connectionBudget.ts). */
  connectionBudget?: { perUser: number; perAddress: number };
  /** How store changes reach the app: its push hook, IDLE watchers, or the poll alone. */
  notify?: "push" | "idle" | "poll";
  /** Minutes between the poll's store checks of one mailbox (src/app/storePoll.ts). */
  pollMinutes?: number;
  /** Protocol trace (src/app/protocolTrace.ts redacts); imapflow's log stays off otherwise. */
  protocolLog?: (src: "c" | "s", line: string) => void;
}

class Slots {
  private active = 0;
  private waiters: Array<{ resolve: () => void; timer: NodeJS.Timeout }> = [];
  constructor(private readonly limit: number) {}
  async take(timeoutMs: number, onTimeout: () => Error): Promise<() => void> {
    // A freed slot passes straight to the next waiter (the count does not change), so no
    // newcomer can take it in between and exceed the cap.
    if (this.active >= this.limit) {
      await new Promise<void>((resolve, reject) => {
        const w = { resolve, timer: setTimeout(() => { this.waiters = this.waiters.filter((x) => x !== w); reject(onTimeout()); }, timeoutMs) };
        this.waiters.push(w);
      });
    } else {
      this.active++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const w = this.waiters.shift();
      if (w) { clearTimeout(w.timer); w.resolve(); }
      else this.active--;
    };
  }
}

const slots = new Map<string, Slots>();

/** Converts anything imapflow throws (or a `false` it returns) into the error vocabulary. */
export function toImapError(e: unknown, endpoint: string, what = "IMAP command"): ConnectorError {
  if (e instanceof ConnectorError) return e;
  const err = (e ?? {}) as { code?: string; message?: string; authenticationFailed?: boolean; responseText?: string; serverResponseCode?: string; response?: string };
  const text = `${err.responseText ?? ""} ${err.response ?? ""} ${err.message ?? ""}`;
  // Dovecot: "Maximum number of connections from user+IP exceeded"; others say "Too many connections".
  if (/maximum number of connections|too many (simultaneous )?connections|connection limit/i.test(text)) {
    return new ConnectorError("IMAP_CONNECTION_LIMIT", `connection limit reached on ${endpoint}`, { endpoint, cause: e, transient: true });
  }
  if (err.authenticationFailed || /AUTHENTICATIONFAILED|authentication failed|invalid credentials/i.test(text)) {
    // Wrong password, or a store that is busy and says so in its own words (src/imap/loginAnswers.ts).
    const verdict = judgeLoginRefusal(err.serverResponseCode, `${err.responseText ?? ""} ${err.response ?? ""}`.trim() || (err.message ?? ""));
    if (verdict === "busy") return new ConnectorError("IMAP_CONNECTION_LIMIT", `${endpoint} is busy or at a connection limit (login refused with "${(err.response ?? err.responseText ?? "").slice(0, 120)}")`, { endpoint, cause: e, transient: true });
    // An ambiguous refusal is transient: the credential gate backs off once before it believes it.
    return new ConnectorError("IMAP_AUTH_FAILED", `authentication failed on ${endpoint}${verdict === "ambiguous" ? " (ambiguous answer: wrong password or busy store)" : ""}`, { endpoint, cause: e, transient: verdict === "ambiguous" });
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|certificate|altnames/i.test(`${err.code ?? ""} ${err.message ?? ""}`)) {
    return new ConnectorError("IMAP_TLS_FAILED", `TLS verification failed for ${endpoint}: ${(err.message ?? "").slice(0, 200)}`, { endpoint, cause: e, transient: false });
  }
  if (/ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EHOSTUNREACH|NoConnection|EConnectionClosed|CONNECT_TIMEOUT|ETIMEOUT|StateLogout|socket/i.test(`${err.code ?? ""} ${err.message ?? ""}`)) {
    return new ConnectorError("IMAP_UNAVAILABLE", `${endpoint} unavailable: ${err.code ?? err.message ?? "connection failed"}`, { endpoint, cause: e, transient: true });
  }
  if (what === "login") {
    // No greeting in time, a greeting that is not IMAP, a connection dropped mid-handshake:
    // the store cannot be talked to right now, which is an outage to back off from.
    return new ConnectorError("IMAP_UNAVAILABLE", `${endpoint} did not complete the IMAP handshake: ${(err.code ?? err.message ?? "no answer").slice(0, 120)}`, { endpoint, cause: e, transient: true });
  }
  return new ConnectorError("IMAP_COMMAND_FAILED", `${what} failed on ${endpoint}: ${(err.responseText ?? err.message ?? "").slice(0, 200)}`, { endpoint, cause: e });
}

/** imapflow's logger interface, keeping only protocol lines ({ src: "c" | "s", msg }). */
function protocolLogger(out: (src: "c" | "s", line: string) => void) {
  const take = (entry: unknown) => {
    const e = entry as { src?: string; msg?: unknown } | undefined;
    if ((e?.src === "c" || e?.src === "s") && typeof e.msg === "string") out(e.src, e.msg);
  };
  return { debug: take, info: take, warn: take, error: take, trace: take };
}

/** Start times of the handshakes (connect to logged in) in flight in this process. */
const handshakes = new Map<symbol, number>();
/** Handshakes in flight and the oldest one's age (benchmarks' stall diagnostics). */
export function handshakesInFlight(): { count: number; oldestMs: number } {
  const oldest = Math.min(...handshakes.values());
  return { count: handshakes.size, oldestMs: handshakes.size ? Date.now() - oldest : 0 };
}

/** IDLE watches one instance may hold per endpoint; the store's budget across instances
 *  (src/app/connectionBudget.ts) is what really bounds them. */
const MAX_WATCHES_PER_ENDPOINT = 5000;

/**
 * Opens an authenticated connection to one voice mailbox, within the endpoint's connection
 * cap. The returned `release` logs out and frees the slot; call it in `finally`. IDLE watches
 * ("watch") hold their connection for minutes, so they have a pool of their own: with the
 * sync runs' cap (maxConnections, default 8) they would take every connection a run needs.
 */
/**
 * A TLS context trusting the public roots and a store's own CA, made once per CA bundle: a
 * `ca` list given to each tls.connect is parsed again on every connection (about 140 roots,
 * some 130 ms of CPU per login on the bench machine, on every run of every link).
 */
const contexts = new Map<string, tls.SecureContext>();
function trustingAlso(caBundle: string): tls.SecureContext {
  let c = contexts.get(caBundle);
  if (!c) { c = tls.createSecureContext({ ca: [...tls.rootCertificates, caBundle] }); contexts.set(caBundle, c); }
  return c;
}

export async function connectMailbox(endpoint: ImapEndpoint, voiceMailbox: string, pool: "sync" | "watch" = "sync"): Promise<{ client: ImapFlow; release: () => Promise<void> }> {
  const key = pool === "watch" ? `${endpoint.id}#watch` : endpoint.id;
  let s = slots.get(key);
  if (!s) { s = new Slots(pool === "watch" ? MAX_WATCHES_PER_ENDPOINT : endpoint.maxConnections); slots.set(key, s); }
  const free = await s.take(endpoint.acquireTimeoutMs ?? 30_000, () => new ConnectorError("IMAP_CONNECTION_LIMIT", `all ${endpoint.maxConnections} connections to ${endpoint.id} are busy`, { endpoint: endpoint.id, transient: true }));
  const a = endpoint.auth;
  const auth = a.mode === "user-password" ? { user: voiceMailbox, pass: a.password }
    : a.mode === "master-separator" ? { user: `${voiceMailbox}${a.separator ?? "*"}${a.masterUser}`, pass: a.password }
    : { user: a.masterUser, pass: a.password, authzid: voiceMailbox, loginMethod: "AUTH=PLAIN" };
  const client = new ImapFlow({
    host: endpoint.host,
    port: endpoint.port,
    secure: endpoint.tls === "implicit",
    doSTARTTLS: endpoint.tls === "starttls" ? true : endpoint.tls === "plaintext" ? false : undefined,
    tls: endpoint.tls === "plaintext" ? undefined : { rejectUnauthorized: true, ...(endpoint.caBundle ? { secureContext: trustingAlso(endpoint.caBundle) } : {}) },
    auth,
    logger: endpoint.protocolLog ? protocolLogger(endpoint.protocolLog) : false,
    qresync: true,
    // No auto-IDLE on sync connections: imapflow starts IDLE on its own after 15 s without a
    // command on a selected mailbox (its autoIdleDelay), and only its own commands end that
    // IDLE first; a command sent with exec (MULTIAPPEND, SETMETADATA: imapflow has no method
    // for them) queues behind the IDLE, which nothing ends, until the command deadline. A run
    // that waits more than 15 s between two commands on one connection (the mirror fetching
    // the next batch from production under load) then failed its MULTIAPPEND after 120 s.
    // Watches IDLE on purpose (src/app/watchers.ts) and keep it.
    disableAutoIdle: pool !== "watch",
    connectionTimeout: endpoint.connectTimeoutMs ?? 15_000,
    greetingTimeout: endpoint.connectTimeoutMs ?? 15_000,
    ...(endpoint.silenceTimeoutMs ? { socketTimeout: endpoint.silenceTimeoutMs } : {}),
  });
  client.on("error", () => undefined); // surfaced through the failing command instead
  // imapflow bounds the TCP/TLS connect and the greeting, but not the rest of its handshake
  // (CAPABILITY, LOGIN/AUTHENTICATE, ENABLE): a store whose authentication hangs after the
  // greeting kept connect() waiting for imapflow's 5-minute socket timeout. The login runs
  // inside the credential's login slot (src/app/credentialGate.ts), so a few such logins held
  // every login with that credential, sync runs and re-watches alike, for minutes, with nothing
  // logged. The whole handshake gets one deadline: the two phases imapflow times, once more.
  const handshakeMs = 2 * (endpoint.connectTimeoutMs ?? 15_000);
  const handshake = Symbol(voiceMailbox);
  handshakes.set(handshake, Date.now());
  try {
    await withDeadline(client.connect(), handshakeMs, "IMAP_UNAVAILABLE", `the IMAP handshake with ${endpoint.id}`, { endpoint: endpoint.id });
  } catch (e) {
    free();
    client.close();
    throw toImapError(e, endpoint.id, "login");
  } finally {
    handshakes.delete(handshake);
  }
  return {
    client,
    release: async () => {
      try { await client.logout(); } catch { client.close(); } finally { free(); }
    },
  };
}

/** Sessions that have listed their folders once (imapflow keeps the answer). */
const listedSessions = new WeakSet<ImapFlow>();

/**
 * SELECT (or EXAMINE) without the LIST and LSUB imapflow sends first: it LISTs a folder the
 * session has not seen yet (for its delimiter and flags) and follows that with LSUB, for
 * subscription state umconnect never reads. One LIST without LSUB (imapflow's listOnly) per
 * session fills imapflow's folder cache for every folder instead, so a run that finds no
 * change sends LIST and SELECT (bench/scale.bench.ts counts them).
 */
export async function selectFolder(client: ImapFlow, folder: string, options?: Parameters<ImapFlow["mailboxOpen"]>[1]) {
  if (!listedSessions.has(client)) {
    listedSessions.add(client);
    // A LIST refused is no reason not to SELECT: imapflow then LISTs the one folder itself.
    await client.list({ listOnly: true }).catch(() => undefined);
  }
  return client.mailboxOpen(folder, options);
}
