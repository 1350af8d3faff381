/**
 * Administering voice-store passwords: a link's own password (stores without a super user,
 * e.g. Cisco Unity Connection), bulk import from CSV, and rotation (a new password written,
 * then tried once as an operator's test, which lifts a lockout stop on success).
 * Passwords go to Key Vault / the local secrets file only (src/app/credentials.ts); what these
 * functions return and log names secrets, never their values.
 */
import { ConnectorError, isConnectorError } from "../errors.js";
import type { Deps } from "../app/deps.js";
import { setLinkSecret, storeAccessState } from "../app/credentials.js";
import { openLinkedMailbox } from "../app/storeAccess.js";
import { readCsvTable } from "./csv.js";

export const CREDENTIALS_CSV_HEADER = ["voiceMailbox", "endpointId", "password"] as const;

export interface CredentialOutcome {
  linkId: string;
  secretName: string;
  /** The test login after a rotation: ok, or the error code the store's answer maps to. */
  test?: { ok: true } | { ok: false; code: string; message: string };
}

async function linkOf(deps: Deps, linkId: string) {
  const link = await deps.state.getLink(linkId);
  if (!link) throw new ConnectorError("NOT_FOUND", `no link ${linkId}`, { mailboxId: linkId });
  return link;
}

/** Sets a link's own password (`umconnect credentials set <link> --password-prompt`). */
export async function setLinkPassword(deps: Deps, linkId: string, password: string): Promise<CredentialOutcome> {
  const link = await linkOf(deps, linkId);
  const secretName = await setLinkSecret(deps, link, password);
  deps.log.info("admin.credential.set", { linkId, endpoint: link.endpointId, secret: secretName });
  return { linkId, secretName };
}

/** Logs in once for the link as an operator's test (lifts a stop on success). */
async function testLink(deps: Deps, link: { linkId: string; endpointId: string; voiceMailbox: string }): Promise<NonNullable<CredentialOutcome["test"]>> {
  try {
    const s = await openLinkedMailbox(deps, link, { folder: "INBOX", removal: { mode: "expunge" } }, { operatorTest: true });
    await s.close();
    return { ok: true };
  } catch (e) {
    if (isConnectorError(e)) return { ok: false, code: e.code, message: e.message };
    throw e;
  }
}

/**
 * Rotates a link's own password: writes the new one, then tries it once. A rejected new
 * password leaves the link stopped (and says so); the old secret version stays in Key Vault's
 * history.
 */
export async function rotateLinkPassword(deps: Deps, linkId: string, password: string): Promise<CredentialOutcome> {
  const link = await linkOf(deps, linkId);
  const out = await setLinkPassword(deps, linkId, password);
  return { ...out, test: await testLink(deps, link) };
}

/**
 * Rotates an endpoint's super-user password: a new version of the secret the endpoint names,
 * then one test login for `mailbox` (or the first linked mailbox).
 */
export async function rotateEndpointPassword(deps: Deps, endpointId: string, password: string, mailbox?: string): Promise<{ endpointId: string; secretName: string; test?: CredentialOutcome["test"] }> {
  const listed = (await deps.directory()).listEndpoints().find((e) => e.id === endpointId);
  if (!listed) throw new ConnectorError("NOT_FOUND", `unknown voice-store endpoint ${endpointId}`, { endpoint: endpointId });
  if (!listed.passwordSecret) throw new ConnectorError("BAD_REQUEST", `endpoint ${endpointId} has its password inline in the local secrets file; edit the file instead`, { endpoint: endpointId });
  const source = deps.secrets();
  if (!source?.set) throw new ConnectorError("CONFIG_INVALID", "no writable secret source (UMC_KEY_VAULT_URI or UMC_SECRETS_FILE)");
  if (!password || password.length > 1024 || /[\r\n\0]/.test(password)) throw new ConnectorError("BAD_REQUEST", "a password is 1 to 1,024 characters without line breaks");
  await source.set(listed.passwordSecret, password);
  deps.reloadDirectory();
  deps.log.info("admin.credential.rotated", { endpoint: endpointId, secret: listed.passwordSecret });
  const target = mailbox ?? (await deps.state.listLinks({})).find((l) => l.endpointId === endpointId)?.voiceMailbox;
  if (!target) return { endpointId, secretName: listed.passwordSecret };
  const link = await deps.state.findLinkByVoice(endpointId, target);
  return { endpointId, secretName: listed.passwordSecret, test: await testLink(deps, { linkId: link?.linkId ?? `test:${endpointId}:${target}`, endpointId, voiceMailbox: target }) };
}

/**
 * Imports links' own passwords from CSV (voiceMailbox,endpointId,password), all or nothing:
 * every row must name a linked mailbox before any secret is written. Problems name lines,
 * never passwords.
 */
export async function importLinkPasswords(deps: Deps, csv: string): Promise<{ set: CredentialOutcome[] }> {
  const table = readCsvTable(csv, CREDENTIALS_CSV_HEADER);
  const problems = [...table.problems];
  const rows: Array<{ line: number; linkId: string; password: string }> = [];
  const seen = new Map<string, number>();
  for (const { line, cells } of table.rows) {
    const [voiceMailbox, endpointId] = [cells[0]!.trim(), cells[1]!.trim()];
    const password = cells[2]!; // as given: spaces may be part of a password
    if (!password || password.length > 1024 || /[\r\n\0]/.test(password)) { problems.push(`line ${line}: the password is empty, longer than 1,024 characters or has a line break`); continue; }
    const link = await deps.state.findLinkByVoice(endpointId, voiceMailbox);
    if (!link) { problems.push(`line ${line}: no link for voice mailbox ${voiceMailbox} on ${endpointId}`); continue; }
    if (seen.has(link.linkId)) { problems.push(`line ${line}: ${voiceMailbox} on ${endpointId} is already on line ${seen.get(link.linkId)}`); continue; }
    seen.set(link.linkId, line);
    rows.push({ line, linkId: link.linkId, password });
  }
  if (problems.length) throw new ConnectorError("BAD_REQUEST", `credentials CSV refused (${problems.length} problem(s)); nothing was written`, { problems });
  const set: CredentialOutcome[] = [];
  for (const r of rows) set.push(await setLinkPassword(deps, r.linkId, r.password));
  return { set };
}

/** Which links carry their own password, and which credentials are stopped (no secrets). */
export async function listCredentials(deps: Deps): Promise<{ stopped: Array<{ key: string; state: string; since: string; nextAttemptAt: string; answer: string }> }> {
  const blocks = await storeAccessState(deps).listBlocks();
  return { stopped: blocks.map((b) => ({ key: b.key, state: b.state, since: b.since, nextAttemptAt: new Date(b.nextAttemptAt).toISOString(), answer: b.answer })) };
}
