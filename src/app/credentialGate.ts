/**
 * Lockout protection: voice stores lock an account after a few failed logins in a row (a
 * typical policy: 3 to 5 failures within 30 minutes, e.g. Cisco Unity Connection's credential
 * policies "Failed Sign-In Attempts" / "Reset Failed Sign-In Attempts Every"), and the super
 * user is the account the whole site depends on. So once the store rejects a credential
 * definitely (src/imap/loginAnswers.ts), every login with it stops, across all instances and
 * all links that share it (per endpoint for a super user, per link for a link's own password),
 * until one of:
 *  - its secret changes (a new Key Vault version, a new local secret: the fingerprint differs);
 *  - an operator's test login succeeds (`umconnect endpoint test`, `umconnect credentials rotate`);
 *  - the backoff window passes: then exactly one instance may try once (a probe, claimed with
 *    the row's ETag), and the window doubles after each failed probe (up to 6 hours).
 * An ambiguous refusal (no response code, a wording that fits both a wrong password and a busy
 * store) first backs off like a busy store ("doubtful"); a second in a row blocks.
 *
 * Within one process logins with one credential go one at a time by default (the endpoint's
 * `loginsAtOnce`), each after reading the block row: a password changed on the store while
 * runs are queued costs one failed login per instance, not one per queued run (logins sent
 * before the first refusal was answered would all count against the store's lockout policy).
 * A credential not yet seen working here goes alone whatever `loginsAtOnce` says (the same
 * semaphore, its limit 1 until a login succeeds). Across instances, logins already
 * in flight when the first refusal lands can still fail once each (one per instance).
 */
import { ConnectorError, isConnectorError } from "../errors.js";
import type { CredentialBlock } from "../state/storeAccessState.js";
import { secretFingerprint, storeAccessState, type LoginCredential } from "./credentials.js";
import type { Deps } from "./deps.js";
import { Semaphore } from "../semaphore.js";

const MAX_WINDOW_SECONDS = 6 * 3600;
/** An ambiguous answer is waited out this long at most before the one retry that decides. */
const DOUBTFUL_WAIT_SECONDS = 120;

/** The wait after `probes` failed probes: the base, doubled each time, capped. */
export function backoffSeconds(base: number, probes: number): number {
  return Math.min(MAX_WINDOW_SECONDS, base * 2 ** Math.min(probes, 20));
}

/** Credentials (key -> fingerprint) that logged in fine in this process. */
const verified = new Map<string, string>();
/** Logins in flight per credential (key) in this process: one until verified, then `loginsAtOnce`. */
const loginSlots = new Map<string, Semaphore>();

function describe(c: Pick<CredentialBlock, "endpointId" | "linkId">): string {
  return c.linkId ? `link ${c.linkId}'s own password on ${c.endpointId}` : `the super-user credential of ${c.endpointId}`;
}

function stoppedError(b: CredentialBlock): ConnectorError {
  const when = new Date(b.nextAttemptAt).toISOString();
  if (b.state === "doubtful") {
    return new ConnectorError("IMAP_UNAVAILABLE", `${b.endpointId} gave an ambiguous login answer for ${describe(b)}; waiting until ${when} before one more try`, { endpoint: b.endpointId, mailboxId: b.linkId, transient: true, retryAfterSeconds: Math.max(1, Math.ceil((b.nextAttemptAt - Date.now()) / 1000)) });
  }
  const fix = b.linkId ? `umconnect credentials rotate ${b.linkId} --password-prompt` : `change the secret, or fix the password on the store and run umconnect endpoint test ${b.endpointId} --mailbox <mailbox>`;
  return new ConnectorError("IMAP_AUTH_FAILED", `logins with ${describe(b)} are stopped since ${b.since}: the store rejected it ("${b.answer}"). To resume: ${fix}. Otherwise one try at ${when}`, { endpoint: b.endpointId, mailboxId: b.linkId, transient: false });
}

export interface GateOptions {
  /** An operator's deliberate test: not held back by a block, and clears it on success. */
  operatorTest?: boolean;
}

/**
 * Runs `login` unless the credential is stopped; records what the store answered. The login
 * must throw the vocabulary of src/imap/endpoint.ts (IMAP_AUTH_FAILED, transient when
 * ambiguous).
 */
export async function gatedLogin<T>(deps: Deps, cred: LoginCredential, login: () => Promise<T>, options: GateOptions = {}): Promise<T> {
  // An operator's test is deliberate and single: it does not queue behind the runs.
  if (options.operatorTest) return gateAndLogin(deps, cred, login, options);
  // A secret that changed since it was seen working is unverified again.
  if (verified.get(cred.key) !== secretFingerprint(cred.key, cred.endpoint.auth.password)) verified.delete(cred.key);
  let slots = loginSlots.get(cred.key);
  const atOnce = cred.endpoint.loginsAtOnce ?? 1;
  if (!slots) loginSlots.set(cred.key, (slots = new Semaphore(() => (verified.has(cred.key) ? atOnce : 1))));
  try {
    // The block is read inside the slot, so a login queued behind a refused one sees the block.
    return await slots.run(() => gateAndLogin(deps, cred, login, options));
  } finally {
    if (slots.idle && loginSlots.get(cred.key) === slots) loginSlots.delete(cred.key);
  }
}

async function gateAndLogin<T>(deps: Deps, cred: LoginCredential, login: () => Promise<T>, options: GateOptions): Promise<T> {
  const access = storeAccessState(deps);
  const fp = secretFingerprint(cred.key, cred.endpoint.auth.password);
  const retry = cred.endpoint.authRetrySeconds ?? 1800;
  let block = await access.getBlock(cred.key);
  let probe = false;
  if (block && block.fingerprint !== fp) {
    deps.log.info("credential.changed", { endpoint: cred.endpointId, linkId: cred.linkId, was: block.state });
    await access.clearBlock(cred.key, block.etag);
    block = undefined;
  } else if (block && !options.operatorTest) {
    if (Date.now() < block.nextAttemptAt) throw stoppedError(block);
    // The window passed: one probe, claimed by moving the next attempt on; losing the race
    // means another instance probes.
    const next = block.state === "blocked" ? backoffSeconds(retry, block.probes + 1) : DOUBTFUL_WAIT_SECONDS;
    try {
      block = await access.putBlock({ ...block, nextAttemptAt: Date.now() + next * 1000 });
    } catch (e) {
      if (isConnectorError(e, "STATE_CONFLICT")) throw stoppedError({ ...block, nextAttemptAt: Date.now() + next * 1000 });
      throw e;
    }
    probe = true;
    deps.log.info("credential.probe", { endpoint: cred.endpointId, linkId: cred.linkId, state: block.state, probes: block.probes });
  }

  try {
    const r = await login();
    verified.set(cred.key, fp);
    if (block) {
      await access.clearBlock(cred.key);
      deps.log.info("credential.recovered", { endpoint: cred.endpointId, linkId: cred.linkId, after: block.state, operatorTest: !!options.operatorTest });
    }
    return r;
  } catch (e) {
    if (isConnectorError(e, "IMAP_AUTH_FAILED")) {
      verified.delete(cred.key);
      throw await recordRefusal(deps, cred, fp, retry, e, block, probe);
    }
    throw e;
  }
}

/** Writes the block a refusal calls for and returns the error to throw. */
async function recordRefusal(deps: Deps, cred: LoginCredential, fp: string, retry: number, e: ConnectorError, block: CredentialBlock | undefined, probe: boolean): Promise<ConnectorError> {
  const access = storeAccessState(deps);
  const answer = answerOf(e);
  const definite = !e.transient || block?.state === "doubtful";
  const now = Date.now();
  const next: CredentialBlock = definite
    ? { key: cred.key, endpointId: cred.endpointId, linkId: cred.linkId, fingerprint: fp, state: "blocked", since: block?.state === "blocked" ? block.since : new Date(now).toISOString(), answer, probes: probe && block?.state === "blocked" ? block.probes + 1 : 0, nextAttemptAt: 0, etag: block?.etag }
    : { key: cred.key, endpointId: cred.endpointId, linkId: cred.linkId, fingerprint: fp, state: "doubtful", since: new Date(now).toISOString(), answer, probes: 0, nextAttemptAt: 0, etag: block?.etag };
  next.nextAttemptAt = now + (definite ? backoffSeconds(retry, next.probes) : Math.min(retry, DOUBTFUL_WAIT_SECONDS)) * 1000;
  try {
    await access.putBlock(next);
  } catch (err) {
    // Another instance recorded the same refusal first: its row stands.
    if (!isConnectorError(err, "STATE_CONFLICT")) throw err;
  }
  deps.log.warn(definite ? "credential.blocked" : "credential.doubtful", { endpoint: cred.endpointId, linkId: cred.linkId, probes: next.probes, retryAt: new Date(next.nextAttemptAt).toISOString() });
  return stoppedError(next);
}

/** The store's status text from the login error (imapflow's `response`), never what we sent. */
function answerOf(e: ConnectorError): string {
  const cause = e.cause as { response?: unknown; responseText?: unknown } | undefined;
  const text = typeof cause?.response === "string" ? cause.response : typeof cause?.responseText === "string" ? cause.responseText : e.message;
  return text.replace(/^\s*\S+\s+(NO|BAD|BYE)\s+/i, "").replace(/[\r\n]+/g, " ").slice(0, 200);
}

/** After an operator fixed things: forget a block (credentials rotate). */
export async function clearCredentialBlock(deps: Deps, key: string): Promise<boolean> {
  const access = storeAccessState(deps);
  const b = await access.getBlock(key);
  if (!b) return false;
  await access.clearBlock(key);
  return true;
}
