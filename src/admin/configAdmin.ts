/**
 * Managing the stored configuration: voice-store endpoints (their passwords only named, kept
 * in Key Vault) and feature profiles. Every change is validated in full before it is written,
 * a secret an endpoint names must be readable, and nothing in use by a link can be removed.
 * Running instances pick changes up within a minute (src/app/deps.ts).
 */
import { ConnectorError } from "../errors.js";
import type { Deps } from "../app/deps.js";
import { endpointProblems, endpointSchema, loadDirectory, ownerOf, ownerText, type EndpointConfig, type Owner } from "../app/endpoints.js";
import { usableBy } from "../security/tenantBoundary.js";
import { DEFAULT_OVERLAP_SECONDS, parseSigningKeys, rotatedKeys, signingSecretName } from "../security/endpointSecrets.js";
import { openVoiceMailbox } from "../imap/voiceMailbox.js";
import { openLinkedMailbox } from "../app/storeAccess.js";
import { DEFAULT_PROFILE, parseProfile } from "./profiles.js";
import type { MailboxLink } from "../state/stateStore.js";

function problemsOf(e: { issues: Array<{ path: PropertyKey[]; message: string }> }): string[] {
  return e.issues.map((i) => `${i.path.map(String).join(".") || "(endpoint)"}: ${i.message}`);
}

export async function setEndpoint(deps: Deps, input: EndpointConfig): Promise<void> {
  const r = endpointSchema.safeParse(input);
  if (!r.success) throw new ConnectorError("BAD_REQUEST", "invalid endpoint", { problems: problemsOf(r.error) });
  if (r.data.auth.password !== undefined) throw new ConnectorError("BAD_REQUEST", "invalid endpoint", { problems: ["auth.password: stored endpoints name their secret (auth.passwordSecret); the password goes into Key Vault"] });
  if (r.data.caBundlePath) throw new ConnectorError("BAD_REQUEST", "invalid endpoint", { problems: ["caBundlePath: store the PEM text (caBundle); files do not exist in Azure"] });
  const refused = [...endpointProblems(r.data, deps.config.environment), ...(await ownerProblems(deps, "endpoint", r.data.id, ownerOf(r.data)))];
  if (refused.length) throw new ConnectorError("BAD_REQUEST", "invalid endpoint", { problems: refused, endpoint: r.data.id });
  const dir = await deps.directory();
  if (dir.listEndpoints().some((e) => e.id === r.data.id && e.source === "file")) throw new ConnectorError("CONFLICT", `endpoint ${r.data.id} is defined in the local secrets file`);
  // It must load on its own, its secret read: a typo in the secret name is refused now, not at the next run.
  await loadDirectory({ stored: { endpoints: [r.data], profiles: [] }, secrets: deps.secrets(), environment: deps.config.environment });
  await deps.state.putConfig("endpoint", r.data.id, r.data);
  deps.log.info("admin.endpoint.set", { endpoint: r.data.id });
  deps.reloadDirectory();
}

export async function removeEndpoint(deps: Deps, id: string): Promise<void> {
  await removeUnused(deps, "endpoint", id, (l) => l.endpointId === id);
}

/**
 * Logs in to the store for one mailbox (as the super user, or with the mailbox's own password
 * when its link has one) and opens its INBOX. A deliberate operator test: it goes through even
 * when logins with that credential are stopped after a rejection, and a success lifts the stop
 * (src/app/credentialGate.ts).
 */
export async function testEndpoint(deps: Deps, id: string, mailbox: string): Promise<{ messages: number }> {
  deps.reloadDirectory();
  (await deps.directory()).endpoint(id);
  const link = await deps.state.findLinkByVoice(id, mailbox);
  const s = await openLinkedMailbox(deps, { linkId: link?.linkId ?? `test:${id}:${mailbox}`, endpointId: id, voiceMailbox: mailbox }, { folder: "INBOX", removal: { mode: "expunge" } }, { operatorTest: true });
  try {
    return { messages: (await s.listKeys()).size };
  } finally {
    await s.close();
  }
}

export async function setProfile(deps: Deps, input: unknown): Promise<string> {
  const p = parseProfile(input);
  if (p.id === DEFAULT_PROFILE.id) throw new ConnectorError("BAD_REQUEST", "the default profile is built in; create a profile with another id");
  const refused = await ownerProblems(deps, "profile", p.id, ownerOf(p));
  if (refused.length) throw new ConnectorError("BAD_REQUEST", "invalid feature profile", { problems: refused });
  const dir = await deps.directory();
  if (dir.listProfiles().some((x) => x.id === p.id) && !(await deps.state.listConfig("profile")).some((x) => (x as { id?: string }).id === p.id)) {
    throw new ConnectorError("CONFLICT", `profile ${p.id} is defined in the local secrets file`);
  }
  await deps.state.putConfig("profile", p.id, input);
  deps.log.info("admin.profile.set", { profile: p.id });
  deps.reloadDirectory();
  return p.id;
}

export async function removeProfile(deps: Deps, id: string): Promise<void> {
  await removeUnused(deps, "profile", id, (l) => l.profileId === id);
}

/**
 * What is being written must name its owner, and no link may be left using an endpoint or
 * profile of another tenant (a change of owner with links in place would hand them over).
 */
async function ownerProblems(deps: Deps, kind: "endpoint" | "profile", id: string, owner: Owner): Promise<string[]> {
  if (!owner) return [`tenantId: every ${kind} belongs to one customer tenant (tenantId) or is marked shared (shared: true)`];
  const others = (await deps.state.listLinks({})).filter((l) => (kind === "endpoint" ? l.endpointId === id : l.profileId === id) && !usableBy(owner, l.tenantId));
  return others.length ? [`tenantId: ${others.length} link(s) of other tenants use ${kind} ${id}; it cannot become ${ownerText(owner)} (${others.slice(0, 5).map((l) => l.linkId).join(", ")})`] : [];
}

/**
 * A new signing secret for an endpoint's store pushes and UC-location callbacks. The one it
 * replaces stays valid for `overlapSeconds` (default a day), so the voice system can be
 * switched to the new one at any moment inside that window. Returns the new secret once, for
 * the voice system's configuration; it is not logged.
 */
export async function rotateSigningSecret(deps: Deps, endpointId: string, overlapSeconds = DEFAULT_OVERLAP_SECONDS): Promise<{ secretName: string; secret: string; previousUntil?: string }> {
  const dir = await deps.directory();
  if (!dir.has("endpoint", endpointId)) throw new ConnectorError("NOT_FOUND", `unknown voice-store endpoint ${endpointId}`, { endpoint: endpointId });
  const name = signingSecretName(endpointId);
  if (!name) throw new ConnectorError("BAD_REQUEST", `endpoint id ${endpointId} cannot name Key Vault secrets (letters, digits and single dashes, dots or underscores)`, { endpoint: endpointId });
  const secrets = deps.secrets();
  if (!secrets) throw new ConnectorError("CONFIG_INVALID", "no secret source is configured (UMC_KEY_VAULT_URI or UMC_SECRETS_FILE)");
  const old = await secrets.find(name);
  const keys = rotatedKeys(old === undefined ? undefined : parseSigningKeys(old), Date.now(), overlapSeconds);
  await secrets.set(name, JSON.stringify(keys));
  deps.log.info("admin.endpoint.secretRotated", { endpoint: endpointId, secretName: name, previousUntil: keys.previousUntil });
  deps.reloadDirectory();
  return { secretName: name, secret: keys.current, ...(keys.previousUntil ? { previousUntil: keys.previousUntil } : {}) };
}

/** Removes a stored endpoint or profile that no link uses. */
async function removeUnused(deps: Deps, kind: "endpoint" | "profile", id: string, uses: (l: MailboxLink) => boolean): Promise<void> {
  const using = (await deps.state.listLinks({})).filter(uses);
  if (using.length) throw new ConnectorError("CONFLICT", `${kind} ${id} is used by ${using.length} link(s)`, { problems: using.slice(0, 20).map((l) => l.linkId) });
  if (!(await deps.state.deleteConfig(kind, id))) throw new ConnectorError("NOT_FOUND", `no stored ${kind} ${id}`);
  deps.log.info(`admin.${kind}.removed`, { [kind]: id });
  deps.reloadDirectory();
}
