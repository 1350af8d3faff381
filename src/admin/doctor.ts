/**
 * `umconnect doctor`: checks a deployment in the order things depend on each other, each with
 * pass / warn / fail and what to do. A check whose prerequisite failed is skipped (saying
 * which), so the first failure is the one to fix. Nothing is changed: reads, one IMAP login per
 * voice store, one token per tenant and one validation request to the app's own webhook.
 *
 *  1. settings (src/config.ts)            5. a Graph token for each connected tenant
 *  2. storage reachable as who runs this   6. permissions granted vs needed (the token's roles)
 *  3. the sync queue exists                7. each voice store: login, CONDSTORE/QRESYNC/IDLE/NOTIFY/METADATA
 *  4. secrets readable (Key Vault / file)  8. Graph's notification URLs answer the validation round trip
 */
import crypto from "node:crypto";
import { isConnectorError, type ConnectorError } from "../errors.js";
import type { Deps } from "../app/deps.js";
import type { Directory } from "../app/endpoints.js";
import { connectMailbox } from "../imap/endpoint.js";
import { storeAccessState } from "../app/credentials.js";
import { rolesOf } from "./consent.js";
import { withDeadline } from "../timeouts.js";

export type CheckState = "pass" | "warn" | "fail" | "skip";
export interface DoctorCheck { check: string; state: CheckState; detail: string; fix?: string }

/**
 * Microsoft Graph application permissions umconnect needs in every customer tenant (the app
 * registration asks for exactly these: scripts/azd/registration.mjs GRAPH_APP_ROLES;
 * https://learn.microsoft.com/graph/permissions-reference). GroupMember.Read.All only for
 * `umconnect link group`.
 */
export const GRAPH_PERMISSIONS_NEEDED = ["Mail.ReadWrite", "Calendars.Read", "Contacts.ReadWrite", "User.Read.All"] as const;

/**
 * IMAP extensions umconnect uses and what their absence costs (not fatal: it falls back).
 * CONDSTORE/QRESYNC: RFC 7162; IDLE: RFC 2177; NOTIFY: RFC 5465; METADATA: RFC 5464.
 */
const CAPABILITIES: Array<[string, string]> = [
  ["CONDSTORE", "without it every poll compares all flags (RFC 7162)"],
  ["QRESYNC", "without it expunges are found by listing every UID (RFC 7162)"],
  ["IDLE", "without it `notify: idle` cannot be used; the poll and the store's push remain (RFC 2177)"],
  ["NOTIFY", "without it `notify: idle` watches INBOX alone; changes in contacts and other folders wait for the poll (RFC 5465)"],
  ["METADATA", "without it the UC location (\"Meeting\") cannot be set on the store (RFC 5464)"],
];

/** Graph gives a subscription's validation 10 s (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks#notificationurl-validation). */
const VALIDATION_DEADLINE_MS = 10_000;
const CHECK_TIMEOUT_MS = 20_000;

const within = <T>(ms: number, what: string, p: Promise<T>): Promise<T> => withDeadline(p, ms, "STATE_UNAVAILABLE", `${what} answering`);

const reason = (e: unknown) => (isConnectorError(e) ? `${e.code}: ${e.message}` : (e as Error)?.message ?? String(e)).slice(0, 300);

/**
 * Runs the checks. `load` builds the deployment from the settings (throws CONFIG_INVALID when
 * they are wrong); `onCheck` sees each result as it is known (the CLI prints as it goes).
 */
export async function runDoctor(load: () => Deps, onCheck: (c: DoctorCheck) => void = () => undefined, options: { fetch?: typeof fetch } = {}): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = [];
  const add = (c: DoctorCheck) => { out.push(c); onCheck(c); return c; };
  const skipAll = (checks: string[], because: string) => { for (const check of checks) add({ check, state: "skip", detail: `skipped: ${because}` }); };
  const LATER = ["storage", "queue", "secrets", "Graph token", "permissions", "voice stores", "notification URL"];

  // 1. settings
  let deps: Deps;
  try {
    deps = load();
    add({ check: "settings", state: "pass", detail: `UMC_* settings valid (environment ${deps.config.environment})` });
  } catch (e) {
    const problems = isConnectorError(e) && e.problems.length ? e.problems : [reason(e)];
    add({ check: "settings", state: "fail", detail: problems.join("; "), fix: "set the settings named (README \"Settings\"; in Azure the function app's application settings)" });
    skipAll(LATER, "the settings are not valid");
    return out;
  }
  const c = deps.config;
  const identity = c.storage.connectionString ? "the connection string's key" : "your Entra sign-in (az login; DefaultAzureCredential)";

  // 2. storage reachable with the identity in use
  let tenants: Awaited<ReturnType<Deps["state"]["listTenants"]>> = [];
  try {
    tenants = await within(CHECK_TIMEOUT_MS, "Table Storage", deps.state.listTenants());
    add({ check: "storage", state: "pass", detail: `Table Storage reachable as ${identity} (${tenants.length} tenant(s))` });
  } catch (e) {
    add({ check: "storage", state: "fail", detail: `Table Storage not reachable as ${identity}: ${reason(e)}`, fix: c.storage.connectionString ? "check UMC_STORAGE_CONNECTION_STRING (account, key, endpoint) and that the account is reachable from here" : "check UMC_TABLE_SERVICE_URI; your sign-in needs Storage Table Data Contributor (azd provision grants it to AZURE_PRINCIPAL_ID)" });
    skipAll(LATER.slice(1), "storage is not reachable");
    return out;
  }

  // 3. the sync queue
  try {
    const exists = await within(CHECK_TIMEOUT_MS, "Queue Storage", deps.syncQueue.exists());
    add(exists
      ? { check: "queue", state: "pass", detail: `queue ${c.storage.syncQueue} exists` }
      : { check: "queue", state: "fail", detail: `queue ${c.storage.syncQueue} does not exist`, fix: `deploy the infrastructure (azd provision creates it) or create it: az storage queue create --name ${c.storage.syncQueue}; check UMC_SYNC_QUEUE` });
  } catch (e) {
    add({ check: "queue", state: "fail", detail: `Queue Storage not reachable as ${identity}: ${reason(e)}`, fix: "check UMC_QUEUE_SERVICE_URI / the connection string; your sign-in needs Storage Queue Data Contributor" });
  }

  // 4. secrets: every endpoint's password secret and signing secret
  let dir: Directory | undefined;
  const source = c.secrets.keyVaultUri ? `Key Vault ${c.secrets.keyVaultUri}` : c.secrets.secretsFile ? "the local secrets file" : undefined;
  if (!source) {
    add({ check: "secrets", state: "fail", detail: "no secret store: neither UMC_KEY_VAULT_URI nor UMC_SECRETS_FILE is set", fix: "set UMC_KEY_VAULT_URI (Azure) or UMC_SECRETS_FILE (dev host)" });
  } else {
    try {
      deps.reloadDirectory();
      dir = await within(CHECK_TIMEOUT_MS, source, deps.directory());
      const endpoints = dir.listEndpoints();
      const unsigned = endpoints.filter((e) => e.signing === "none" && !e.refused).map((e) => e.id);
      const refused = endpoints.filter((e) => e.refused);
      if (refused.length) add({ check: "secrets", state: "fail", detail: `endpoint(s) refused: ${refused.map((e) => `${e.id} (${e.refused})`).join("; ")}`, fix: "fix the endpoint with `umconnect endpoint set <file>`" });
      else if (unsigned.length) add({ check: "secrets", state: "fail", detail: `no signing secret for ${unsigned.join(", ")} in ${source} (their pushes and callbacks cannot be signed)`, fix: unsigned.map((id) => `umconnect endpoint rotate-secret ${id}`).join("; ") });
      else add({ check: "secrets", state: "pass", detail: `${endpoints.length} voice store(s): password and signing secrets readable in ${source}` });
    } catch (e) {
      add({ check: "secrets", state: "fail", detail: `secrets not readable in ${source}: ${reason(e)}`, fix: c.secrets.keyVaultUri ? "create the secret named, or grant your sign-in Key Vault Secrets User (Officer to rotate)" : "add the secret named to the secrets file's \"secrets\" map" });
    }
  }

  // 5 and 6. a token per connected tenant, and its permissions
  const active = tenants.filter((t) => t.status === "active");
  if (!active.length) {
    add({ check: "Graph token", state: "warn", detail: "no tenant is connected yet", fix: "send the customer's admin to https://<app>/api/admin/consent/start?tenant=<tenant id>" });
    add({ check: "permissions", state: "skip", detail: "skipped: no tenant is connected" });
  }
  const tokens = new Map<string, string>();
  for (const t of active) {
    try {
      // Fresh: the check signs in now and reads the permissions granted now, not a kept token's.
      tokens.set(t.tenantId, await within(CHECK_TIMEOUT_MS, "Entra ID", deps.tokens().token(t.tenantId, { fresh: true })));
      add({ check: "Graph token", state: "pass", detail: `tenant ${t.tenantId}: app-only token issued` });
    } catch (e) {
      add({ check: "Graph token", state: "fail", detail: `tenant ${t.tenantId}: no token: ${reason(e)}`, fix: "check UMC_CLIENT_ID and the app's credential (certificate / federated identity); if the tenant revoked consent its admin consents again" });
    }
  }
  for (const t of active) {
    const token = tokens.get(t.tenantId);
    if (!token) { add({ check: "permissions", state: "skip", detail: `skipped: tenant ${t.tenantId} gave no token` }); continue; }
    const roles = rolesOf(token);
    const missing = GRAPH_PERMISSIONS_NEEDED.filter((r) => !roles.includes(r));
    add(missing.length
      ? { check: "permissions", state: "fail", detail: `tenant ${t.tenantId}: granted ${roles.join(", ") || "nothing"}; missing ${missing.join(", ")}`, fix: `an admin of the tenant consents again: ${c.publicBaseUrl ?? "https://<app>"}/api/admin/consent/start?tenant=${t.tenantId}` }
      : { check: "permissions", state: "pass", detail: `tenant ${t.tenantId}: ${GRAPH_PERMISSIONS_NEEDED.join(", ")} granted${roles.includes("GroupMember.Read.All") ? " (and GroupMember.Read.All for group links)" : ""}` });
  }

  // 7. each voice store: a login and its capabilities
  if (!dir) add({ check: "voice stores", state: "skip", detail: "skipped: the voice stores could not be loaded (secrets)" });
  else await checkStores(deps, dir, add);

  // 8. Graph's notification URLs: the validation round trip Graph does when a subscription is made
  if (!c.publicBaseUrl) add({ check: "notification URL", state: "fail", detail: "UMC_PUBLIC_BASE_URL is not set: Graph has nowhere to send change notifications", fix: "set UMC_PUBLIC_BASE_URL to the app's public https address" });
  else {
    for (const path of ["/api/graph/notifications", "/api/graph/lifecycle"]) {
      const url = `${c.publicBaseUrl.replace(/\/$/, "")}${path}`;
      const token = `umconnect-doctor-${crypto.randomBytes(9).toString("base64url")}`;
      const started = Date.now();
      try {
        const r = await (options.fetch ?? fetch)(`${url}?validationToken=${encodeURIComponent(token)}`, { method: "POST", headers: { "content-type": "text/plain" }, body: "", redirect: "manual", signal: AbortSignal.timeout(VALIDATION_DEADLINE_MS) });
        const body = await r.text();
        const ms = Date.now() - started;
        add(r.status === 200 && body === token && (r.headers.get("content-type") ?? "").startsWith("text/plain")
          ? { check: "notification URL", state: "pass", detail: `${url}: validation answered in ${ms} ms over https` }
          : { check: "notification URL", state: "fail", detail: `${url}: validation got HTTP ${r.status} ${JSON.stringify(body.slice(0, 80))} (Graph needs 200, text/plain, the token echoed)`, fix: "point UMC_PUBLIC_BASE_URL at this app (not a proxy page or another app)" });
      } catch (e) {
        add({ check: "notification URL", state: "fail", detail: `${url}: not reachable over https: ${reason((e as { cause?: unknown }).cause ?? e)}`, fix: "Graph calls it from the internet: check UMC_PUBLIC_BASE_URL, DNS, that the app runs, and a publicly trusted certificate" });
      }
    }
  }
  return out;
}

async function checkStores(deps: Deps, dir: Directory, add: (c: DoctorCheck) => void): Promise<void> {
  const endpoints = dir.listEndpoints().filter((e) => !e.refused);
  if (!endpoints.length) { add({ check: "voice stores", state: "warn", detail: "no voice store is configured", fix: "umconnect endpoint set <endpoint.json>" }); return; }
  const [links, blocks] = await Promise.all([deps.state.listLinks({}), storeAccessState(deps).listBlocks()]);
  for (const summary of endpoints) {
    const ep = dir.endpoint(summary.id);
    const blocked = blocks.find((b) => b.endpointId === ep.id && !b.linkId && b.state === "blocked");
    // A credential the lockout protection stopped is not tried again from here (docs/operations.md).
    if (blocked) { add({ check: "voice stores", state: "fail", detail: `${ep.id}: logins stopped since ${blocked.since}: the store rejected the credential ("${blocked.answer}")`, fix: `correct the secret, then \`umconnect endpoint test ${ep.id} --mailbox <M>\`` }); continue; }
    if (ep.passwordPerLink) { add({ check: "voice stores", state: "warn", detail: `${ep.id}: each link logs in with its own password; not tried from here`, fix: `umconnect endpoint test ${ep.id} --mailbox <M>` }); continue; }
    const mailbox = links.find((l) => l.endpointId === ep.id)?.voiceMailbox;
    if (!mailbox && ep.auth.mode !== "user-password") { add({ check: "voice stores", state: "warn", detail: `${ep.id}: no link uses it yet, so there is no mailbox to log in for`, fix: `umconnect endpoint test ${ep.id} --mailbox <M>` }); continue; }
    try {
      const { client, release } = await within(CHECK_TIMEOUT_MS, ep.id, connectMailbox(ep, mailbox ?? ""));
      try {
        const caps = client.capabilities;
        const has = (name: string) => caps.has(name) || (name === "METADATA" && caps.has("METADATA-SERVER"));
        const missing = CAPABILITIES.filter(([name]) => !has(name));
        add(missing.length
          ? { check: "voice stores", state: "warn", detail: `${ep.id}: login for ${mailbox} ok; missing ${missing.map(([n]) => n).join(", ")}: ${missing.map(([, why]) => why).join("; ")}`, fix: "enable the extensions on the store if it has them" }
          : { check: "voice stores", state: "pass", detail: `${ep.id}: login for ${mailbox} ok; ${CAPABILITIES.map(([n]) => n).join(", ")} offered` });
      } finally { await release(); }
    } catch (e) {
      const code = isConnectorError(e) ? (e as ConnectorError).code : "";
      add({ check: "voice stores", state: "fail", detail: `${ep.id} (${ep.host}:${ep.port}): login for ${mailbox} failed: ${reason(e)}`, fix: code === "IMAP_AUTH_FAILED" ? "correct the store's password secret (`umconnect credentials rotate --endpoint <id>`)" : code === "IMAP_TLS_FAILED" ? "give the endpoint the store's CA (caBundle) or fix its certificate" : "check the endpoint's host, port and tls, and that the store is reachable from the app" });
    }
  }
}
