/**
 * Which credential a link logs in with, and links' own passwords.
 *
 * Stores with a super user (Avaya "IMAP4 Super User Access", Dovecot master users) share one
 * endpoint credential across all their links. Cisco Unity Connection has none for IMAP: each
 * user logs in with their alias and their own password (CUC System Administration Guide,
 * "Configuring IMAP Settings": IMAP clients authenticate as the user). Such a link carries its
 * own secret: a Key Vault secret per link in Azure, an entry of the local secrets file's
 * `secrets` map in the dev host. Its name is derived from the endpoint and the link (so it
 * stays under the endpoint's name prefix) and recorded in the "linkcreds" table; the password
 * is never written to a table or a log, and never printed.
 *
 * A link's own secret wins over the endpoint's password in every auth mode (user-password: the
 * user's password; master-separator / sasl-authzid: a per-link master password, for stores that
 * issue one per mailbox). An endpoint with `auth.passwordPerLink` needs no password of its own.
 */
import crypto from "node:crypto";
import { ConnectorError } from "../errors.js";
import type { ImapEndpoint } from "../imap/endpoint.js";
import { StoreAccessState } from "../state/storeAccessState.js";
import type { MailboxLink } from "../state/stateStore.js";
import type { Deps } from "./deps.js";

/** The credential one login uses: whose it is (the lockout scope) and the endpoint to log in with. */
export interface LoginCredential {
  /** "endpoint:<id>" (shared super-user credential) or "link:<linkId>" (the link's own). */
  key: string;
  kind: "endpoint" | "link";
  endpointId: string;
  linkId?: string;
  /** The endpoint with this credential's password in place. */
  endpoint: ImapEndpoint;
}

const accessStates = new WeakMap<Deps, StoreAccessState>();
export function storeAccessState(deps: Deps): StoreAccessState {
  let s = accessStates.get(deps);
  if (!s) { s = new StoreAccessState(deps.state); accessStates.set(deps, s); }
  return s;
}

/**
 * The Key Vault secret name of a link's own password: `<endpoint>--link-<link>-<hash>` (under the
 * endpoint's own secret prefix `<id>--`, docs/security.md), only
 * letters, digits and dashes (Key Vault's rule), at most 127 characters; the hash keeps two
 * links whose ids differ only in punctuation apart.
 */
export function linkSecretName(endpointId: string, linkId: string): string {
  const clean = (s: string) => s.replace(/[^0-9A-Za-z-]+/g, "-").replace(/-+/g, "-").replace(/^-|-$/g, "");
  const hash = crypto.createHash("sha256").update(`${endpointId}\n${linkId}`).digest("hex").slice(0, 8);
  return `${clean(endpointId).slice(0, 48)}--link-${clean(linkId).slice(0, 60)}-${hash}`;
}

/** Link secrets read recently, by secret name (Key Vault reads are not free; a rotation shows within this). */
const SECRET_TTL_MS = 60_000;
const secretCache = new Map<string, { at: number; value: Promise<string> }>();

async function readSecret(deps: Deps, name: string): Promise<string> {
  const hit = secretCache.get(name);
  if (hit && Date.now() - hit.at < SECRET_TTL_MS) return hit.value;
  const source = deps.secrets();
  if (!source) throw new ConnectorError("CONFIG_INVALID", `secret ${name} is needed, but no secret source is configured (UMC_KEY_VAULT_URI or UMC_SECRETS_FILE)`);
  const value = source.get(name);
  secretCache.set(name, { at: Date.now(), value });
  value.catch(() => secretCache.delete(name));
  return value;
}

/** Forget cached link secrets (after a change made in this process). */
export function forgetLinkSecret(name: string): void {
  secretCache.delete(name);
}

/** The credential a link logs in with, its password resolved. */
export async function loginCredential(deps: Deps, link: Pick<MailboxLink, "linkId" | "endpointId">): Promise<LoginCredential> {
  const endpoint = (await deps.directory({ endpointId: link.endpointId })).endpoint(link.endpointId);
  const own = await storeAccessState(deps).getLinkCredential(link.linkId);
  if (own) {
    if (own.endpointId !== link.endpointId) throw new ConnectorError("CONFIG_INVALID", `link ${link.linkId} has a credential for endpoint ${own.endpointId}, but is linked to ${link.endpointId}: set it again`, { mailboxId: link.linkId, endpoint: link.endpointId });
    const password = await readSecret(deps, own.secretName);
    return { key: `link:${link.linkId}`, kind: "link", endpointId: link.endpointId, linkId: link.linkId, endpoint: { ...endpoint, auth: { ...endpoint.auth, password } } };
  }
  if (endpoint.passwordPerLink && !endpoint.auth.password) {
    throw new ConnectorError("IMAP_AUTH_FAILED", `endpoint ${endpoint.id} logs in with each link's own password, and link ${link.linkId} has none: umconnect credentials set ${link.linkId} --password-prompt`, { mailboxId: link.linkId, endpoint: endpoint.id, transient: false });
  }
  return { key: `endpoint:${endpoint.id}`, kind: "endpoint", endpointId: endpoint.id, endpoint };
}

/**
 * Stores a link's own password: the secret first (Key Vault / local file), then the reference.
 * Returns the secret's name (never the value).
 */
export async function setLinkSecret(deps: Deps, link: Pick<MailboxLink, "linkId" | "endpointId">, password: string): Promise<string> {
  if (!password || password.length > 1024 || /[\r\n\0]/.test(password)) throw new ConnectorError("BAD_REQUEST", "a password is 1 to 1,024 characters without line breaks");
  const source = deps.secrets();
  if (!source?.set) throw new ConnectorError("CONFIG_INVALID", "no writable secret source (UMC_KEY_VAULT_URI or UMC_SECRETS_FILE)");
  const name = linkSecretName(link.endpointId, link.linkId);
  await source.set(name, password);
  forgetLinkSecret(name);
  await storeAccessState(deps).putLinkCredential({ linkId: link.linkId, endpointId: link.endpointId, secretName: name, setAt: new Date().toISOString() });
  return name;
}

/** A short fingerprint of a credential's secret: tells a changed secret apart, reveals nothing
 *  useful (32 bits; salted with the credential's key, so equal passwords differ across keys). */
export function secretFingerprint(key: string, password: string): string {
  return crypto.createHash("sha256").update(`umconnect-credential\n${key}\n${password}`).digest("hex").slice(0, 8);
}
