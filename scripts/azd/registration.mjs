#!/usr/bin/env node
/**
 * umconnect's azd hooks (azure.yaml): one idempotent flow for the app registration, the Key
 * Vault name and the secrets. Every step reads first and writes only what differs, so a second
 * `azd up` (or one after `azd down --purge`) changes nothing that is already right.
 *
 *   node scripts/azd/registration.mjs preprovision    before Bicep runs
 *   node scripts/azd/registration.mjs postprovision   after Bicep, before the package is deployed
 *
 * preprovision: checks the region (Flex Consumption only); creates or updates the multi-tenant
 *   app registration (unique name umconnect-<env>) with the Graph application permissions the
 *   code uses (once each), the admin app role and scope with stable ids (existing ids are kept:
 *   Entra refuses changing an enabled role's id), identifier URI, Azure CLI pre-authorized; the
 *   service principal in this tenant; picks a Key Vault name per azd environment and asks Bicep
 *   to recover the vault when a soft-deleted one of that name exists (azd down without --purge).
 * postprovision: the consent redirect URI; the federated credential that lets the function
 *   app's managed identity sign in as the app (no secret, no certificate, nothing on disk); the
 *   webhook secret in Key Vault when missing; then waits until the app's Key Vault references
 *   resolve, so the app never reads the literal reference text.
 *
 * Tools: `az` for tokens only (az login as an admin of the publisher tenant), `azd env set` to
 * keep values in the azd environment; Graph, Key Vault and ARM are called over https. No
 * dependencies: it runs before `npm ci`. Base URLs can be pointed elsewhere for tests
 * (test/infra/registration.test.ts runs it twice against a recording fake).
 */
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const env = process.env;
const GRAPH = (env.UMC_HOOK_GRAPH_URL ?? "https://graph.microsoft.com").replace(/\/$/, "");
const ARM = (env.UMC_HOOK_ARM_URL ?? "https://management.azure.com").replace(/\/$/, "");
const GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"; // Microsoft Graph
const AZURE_CLI_APP_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"; // pre-authorized for the admin scope

/**
 * Microsoft Graph application permissions the code uses; app role ids are the same in every
 * tenant (https://learn.microsoft.com/graph/permissions-reference).
 */
const GRAPH_APP_ROLES = {
  "Mail.ReadWrite": "e2a3a72e-5f79-4c64-b1b1-878b674786c9", // voicemail items, flags, moves, delta, subscriptions
  "Calendars.Read": "798ee544-9d2d-430c-a058-570e29e34338", // calendar mirror (calendarView delta)
  "Contacts.ReadWrite": "6918b873-d17a-4dc1-b314-35f528134491", // two-way contacts
  "User.Read.All": "df021288-bdef-4463-88db-98f22de89214", // match voice mailboxes to users by SMTP address
};
/**
 * Asked for only when the environment uses it (least privilege): `azd env set
 * UMC_GROUP_LINKING true` for `umconnect group-link` (the group members delta,
 * https://learn.microsoft.com/graph/api/group-delta lists GroupMember.Read.All as the least
 * privileged application permission). Customer tenants consent again after it is added.
 */
const OPTIONAL_GRAPH_APP_ROLES = {
  "GroupMember.Read.All": { id: "98830695-27a2-44f7-8c18-0c3ebc9698f6", when: () => env.UMC_GROUP_LINKING === "true" },
};
const graphAppRoles = () => [...Object.values(GRAPH_APP_ROLES), ...Object.values(OPTIONAL_GRAPH_APP_ROLES).filter((r) => r.when()).map((r) => r.id)];
/** Stable ids for what this app defines itself (used when the app has none of that value yet). */
const ADMIN_ROLE_ID = "5b0c3f8e-6d1e-4f1a-9a57-2d3e0c1a7b11";
const ADMIN_SCOPE_ID = "8f6e4d2a-1c3b-4e5f-a7b9-0d1e2f3a4b5c";
// Voice stores sign with their own secrets (umconnect endpoint rotate-secret), not one of the app's.
const SECRET_NAMES = ["umc-webhook-secret"];
const FIC_NAME = "umconnect-managed-identity";

class HookError extends Error {}
const fail = (msg) => { throw new HookError(msg); };
const log = (msg) => process.stderr.write(`umconnect ${phase}: ${msg}\n`);
const need = (name, hint) => env[name] || fail(`${name} is not set in the azd environment${hint ? `: ${hint}` : ""}`);

const tokens = new Map();
function token(resource) {
  if (!tokens.has(resource)) {
    try {
      tokens.set(resource, execFileSync("az", ["account", "get-access-token", "--resource", resource, "--query", "accessToken", "-o", "tsv"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim());
    } catch (e) {
      fail(`no Azure CLI token for ${resource}: run 'az login' as an administrator of the publisher tenant (${String(e.stderr ?? e.message).trim().split("\n")[0]})`);
    }
  }
  return tokens.get(resource);
}

async function call(method, url, resource, body, headers = {}) {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token(resource)}`, ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const json = text ? (() => { try { return JSON.parse(text); } catch { return { raw: text }; } })() : undefined;
  return { status: res.status, json };
}
const ok = (r, what) => (r.status >= 200 && r.status < 300 ? r.json : fail(`${what}: HTTP ${r.status} ${JSON.stringify(r.json?.error ?? r.json ?? "").slice(0, 300)}`));
const graph = (method, p, body, headers) => call(method, `${GRAPH}/v1.0${p}`, "https://graph.microsoft.com", body, headers);
const arm = (method, p, body) => call(method, `${ARM}${p}`, "https://management.azure.com", body);

function azdSet(name, value) {
  if (env[name] === value) return;
  execFileSync("azd", ["env", "set", name, value], { stdio: ["ignore", "ignore", "inherit"] });
  env[name] = value;
  log(`azd env set ${name}`);
}

/** Same JSON, ignoring key order and the server's extra fields in `have`. */
function covers(have, want) {
  if (Array.isArray(want)) return Array.isArray(have) && have.length === want.length && want.every((w, i) => covers(have[i], w));
  if (want && typeof want === "object") return !!have && typeof have === "object" && Object.keys(want).every((k) => covers(have[k], want[k]));
  return have === want;
}

/** The Flex regions, read from infra/main.bicep's @allowed list (one list, kept there). */
function flexRegions() {
  const bicep = fs.readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), "../../infra/main.bicep"), "utf8");
  const block = bicep.match(/@allowed\(\[([^\]]*)\]\)\s*@metadata\(\{ azd: \{ type: 'location' \} \}\)/);
  return block ? [...block[1].matchAll(/'([a-z0-9]+)'/g)].map((m) => m[1]) : [];
}

function desiredApp(appId, existing, withPreAuthorization = true) {
  // Keep the ids an existing app already uses for our role and scope (changing an enabled one's
  // id is refused: CannotDeleteOrUpdateEnabledEntitlement); otherwise the stable constants.
  const roleId = existing?.appRoles?.find((r) => r.value === "Umconnect.Admin")?.id ?? ADMIN_ROLE_ID;
  const scopeId = existing?.api?.oauth2PermissionScopes?.find((s) => s.value === "admin")?.id ?? ADMIN_SCOPE_ID;
  return {
    signInAudience: "AzureADMultipleOrgs",
    requiredResourceAccess: [{ resourceAppId: GRAPH_APP_ID, resourceAccess: graphAppRoles().map((id) => ({ id, type: "Role" })) }],
    appRoles: [{ id: roleId, allowedMemberTypes: ["User"], description: "Read umconnect status and operate links", displayName: "umconnect administrator", isEnabled: true, value: "Umconnect.Admin" }],
    ...(appId ? { identifierUris: [`api://${appId}`] } : {}),
    api: {
      requestedAccessTokenVersion: 2,
      oauth2PermissionScopes: [{ id: scopeId, value: "admin", type: "Admin", isEnabled: true, adminConsentDisplayName: "Administer umconnect", adminConsentDescription: "Read umconnect status as the signed-in operator" }],
      // Entra checks pre-authorizations against the scopes already saved: a second step.
      ...(withPreAuthorization ? { preAuthorizedApplications: [{ appId: AZURE_CLI_APP_ID, delegatedPermissionIds: [scopeId] }] } : {}),
    },
  };
}

/** PATCH only the top-level properties that differ; returns their names. */
async function patchApp(app, want) {
  const diff = Object.fromEntries(Object.entries(want).filter(([k, v]) => !covers(app[k], v)));
  if (!Object.keys(diff).length) return [];
  ok(await graph("PATCH", `/applications/${app.id}`, diff), `update app registration ${app.appId}`);
  return Object.keys(diff);
}

async function preprovision() {
  const envName = need("AZURE_ENV_NAME");
  const location = env.AZURE_LOCATION;
  const regions = flexRegions();
  if (location && regions.length && !regions.includes(location)) {
    fail(`AZURE_LOCATION=${location} has no Flex Consumption plan; pick one of: ${regions.join(", ")} (azd env set AZURE_LOCATION <region>)`);
  }
  // The app registration: the one named by UMC_APP_CLIENT_ID, or this environment's own.
  let app;
  if (env.UMC_APP_CLIENT_ID) {
    const r = await graph("GET", `/applications(appId='${env.UMC_APP_CLIENT_ID}')`);
    if (r.status === 404) fail(`UMC_APP_CLIENT_ID=${env.UMC_APP_CLIENT_ID} is no app registration in this tenant: check the id (Entra ID > App registrations > Application (client) ID), or clear it (azd env set UMC_APP_CLIENT_ID "") to have one created`);
    app = ok(r, "read the app registration");
  } else {
    const uniqueName = `umconnect-${envName}`;
    const r = await graph("GET", `/applications(uniqueName='${uniqueName}')`);
    if (r.status === 404) {
      // Upsert by unique name (https://learn.microsoft.com/graph/api/application-upsert): a rerun
      // after a failure finds the same app instead of creating a second one.
      app = ok(await graph("PATCH", `/applications(uniqueName='${uniqueName}')`, { displayName: `umconnect (${envName})`, signInAudience: "AzureADMultipleOrgs" }, { Prefer: "create-if-missing" }), "create the app registration");
      log(`created app registration ${app.appId}`);
    } else app = ok(r, "read the app registration");
  }
  const changed = [...await patchApp(app, desiredApp(app.appId, app, false))];
  if (changed.length) app = ok(await graph("GET", `/applications/${app.id}`), "read the app registration");
  changed.push(...await patchApp(app, desiredApp(app.appId, app)));
  if (changed.length) log(`app registration ${app.appId}: updated ${changed.join(", ")}`);
  // The service principal (enterprise application) in the publisher tenant: operators get the
  // Umconnect.Admin role on it.
  const sp = await graph("GET", `/servicePrincipals(appId='${app.appId}')`);
  if (sp.status === 404) { ok(await graph("POST", "/servicePrincipals", { appId: app.appId }), "create the service principal"); log("created the service principal"); }
  else ok(sp, "read the service principal");
  azdSet("UMC_APP_CLIENT_ID", app.appId);

  // Key Vault: a name per azd environment, random so that it is free worldwide. After `azd down`
  // without --purge (or with purge protection) the vault waits soft-deleted under that name:
  // recover it, with its secrets, instead of failing with VaultAlreadyExists.
  if (!env.UMC_KEY_VAULT_NAME) azdSet("UMC_KEY_VAULT_NAME", `kv-umc-${crypto.randomBytes(6).toString("hex")}`);
  const sub = need("AZURE_SUBSCRIPTION_ID");
  if (location) {
    const deleted = await arm("GET", `/subscriptions/${sub}/providers/Microsoft.KeyVault/locations/${location}/deletedVaults/${env.UMC_KEY_VAULT_NAME}?api-version=2023-07-01`);
    if (deleted.status !== 404) ok(deleted, "look for a soft-deleted Key Vault");
    azdSet("UMC_KEY_VAULT_CREATE_MODE", deleted.status === 404 ? "default" : "recover");
    if (deleted.status !== 404) log(`Key Vault ${env.UMC_KEY_VAULT_NAME} is soft-deleted: this provision recovers it`);
  }
}

async function postprovision() {
  const appId = need("UMC_APP_CLIENT_ID", "the preprovision hook sets it");
  const base = need("UMC_PUBLIC_BASE_URL", "an output of infra/main.bicep");
  const tenant = need("AZURE_TENANT_ID", "an output of infra/main.bicep");
  const miPrincipal = need("AZURE_MANAGED_IDENTITY_PRINCIPAL_ID", "an output of infra/main.bicep");
  const app = ok(await graph("GET", `/applications(appId='${appId}')`), `read app registration ${appId}`);
  const redirect = `${base.replace(/\/$/, "")}/api/admin/consent/callback`;
  const uris = app.web?.redirectUris ?? [];
  if (!uris.includes(redirect)) {
    ok(await graph("PATCH", `/applications/${app.id}`, { web: { redirectUris: [...uris, redirect] } }), "add the consent redirect URI");
    log(`redirect URI ${redirect} added`);
  }
  // The managed identity as a federated credential of the app: it signs in to customer tenants
  // with no secret at all
  // (https://learn.microsoft.com/entra/workload-id/workload-identity-federation-config-app-trust-managed-identity).
  const fic = { name: FIC_NAME, issuer: `https://login.microsoftonline.com/${tenant}/v2.0`, subject: miPrincipal, audiences: ["api://AzureADTokenExchange"] };
  const fics = ok(await graph("GET", `/applications/${app.id}/federatedIdentityCredentials`), "list federated credentials").value ?? [];
  const mine = fics.find((f) => f.name === FIC_NAME);
  if (!mine) { ok(await graph("POST", `/applications/${app.id}/federatedIdentityCredentials`, fic), "add the federated credential"); log("federated credential for the managed identity added"); }
  else if (!covers(mine, fic)) { ok(await graph("PATCH", `/applications/${app.id}/federatedIdentityCredentials/${mine.id}`, { issuer: fic.issuer, subject: fic.subject, audiences: fic.audiences }), "update the federated credential"); log("federated credential updated (new managed identity)"); }

  // Webhook secrets: created once, never rotated by a rerun (that would invalidate every Graph
  // subscription's clientState). The deployer has Key Vault Secrets Officer (infra/app/rbac.bicep);
  // a fresh role assignment can take a few minutes to apply, so 403 is retried.
  const vault = need("UMC_KEY_VAULT_URI", "an output of infra/main.bicep").replace(/\/$/, "");
  const kv = (method, name, body) => call(method, `${vault}/secrets/${name}${method === "GET" ? "" : ""}?api-version=7.4`, "https://vault.azure.net", body);
  let created = 0;
  for (const name of SECRET_NAMES) {
    let r;
    for (let attempt = 0; ; attempt++) {
      r = await kv("GET", name);
      if (r.status !== 403 || attempt >= Number(env.UMC_HOOK_RBAC_RETRIES ?? 12)) break;
      log(`Key Vault refused reading ${name} (role assignment not active yet); retrying in 15 s`);
      await new Promise((res) => setTimeout(res, Number(env.UMC_HOOK_RBAC_WAIT_MS ?? 15_000)));
    }
    if (r.status === 403) fail(`Key Vault ${vault} refuses the deploying principal: it needs Key Vault Secrets Officer (granted to AZURE_PRINCIPAL_ID by infra/app/rbac.bicep); check 'azd env get-value AZURE_PRINCIPAL_ID' is you, then rerun 'azd provision'`);
    if (r.status === 404) {
      const put = await kv("PUT", name, { value: crypto.randomBytes(48).toString("base64url"), contentType: "umconnect HMAC key" });
      if (put.status === 409) fail(`secret ${name} is deleted but not purged in ${vault}: recover it ('az keyvault secret recover --vault-name <vault> --name ${name}') or purge it, then rerun 'azd provision'`);
      ok(put, `create secret ${name}`);
      created++;
      log(`secret ${name} created`);
    } else ok(r, `read secret ${name}`);
  }
  await checkReferences(created > 0);
}

/**
 * The app's UMC_WEBHOOK_SECRET setting is a Key Vault reference; App Service resolves them when it
 * loads settings and then caches them. After creating a secret, ask for a refresh
 * (https://learn.microsoft.com/azure/app-service/app-service-key-vault-references#rotation), then
 * wait until it reports Resolved, or say why not.
 */
async function checkReferences(refresh) {
  const sub = need("AZURE_SUBSCRIPTION_ID");
  const site = `/subscriptions/${sub}/resourceGroups/${need("AZURE_RESOURCE_GROUP")}/providers/Microsoft.Web/sites/${need("AZURE_FUNCTION_APP_NAME")}`;
  if (refresh) ok(await arm("POST", `${site}/config/configreferences/appsettings/refresh?api-version=2022-03-01`), "refresh the app's Key Vault references");
  const deadline = Date.now() + Number(env.UMC_HOOK_REFERENCE_WAIT_MS ?? 120_000);
  for (;;) {
    const pending = [];
    for (const key of ["UMC_WEBHOOK_SECRET"]) {
      const r = ok(await arm("GET", `${site}/config/configreferences/appsettings/${key}?api-version=2022-03-01`), `read the Key Vault reference status of ${key}`);
      if (r.properties?.status !== "Resolved") pending.push(`${key}: ${r.properties?.status ?? "unknown"} ${r.properties?.details ?? ""}`.trim());
    }
    if (!pending.length) return;
    if (Date.now() > deadline) fail(`the app's Key Vault references do not resolve (${pending.join("; ")}): check that the secrets exist in ${env.UMC_KEY_VAULT_URI} and that the app's identity has Key Vault Secrets User, then rerun 'azd provision'`);
    await new Promise((res) => setTimeout(res, Number(env.UMC_HOOK_POLL_MS ?? 5_000)));
  }
}

const phase = process.argv[2];
const steps = { preprovision, postprovision };
if (!steps[phase]) { process.stderr.write("usage: registration.mjs preprovision|postprovision\n"); process.exit(2); }
steps[phase]().catch((e) => {
  process.stderr.write(`umconnect ${phase} FAILED: ${e instanceof HookError ? e.message : e?.stack ?? e}\n`);
  process.exit(1);
});
