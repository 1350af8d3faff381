/**
 * The azd hooks (scripts/azd/registration.mjs) run as azd runs them (a child process, the azd
 * environment as variables, `az` for tokens and `azd env set` on PATH) against a recording fake
 * of the Graph application endpoints, Key Vault secrets and the ARM calls they use. The fake
 * keeps Entra's rules that broke the old script: an enabled app role or scope cannot change its
 * id or vanish (CannotDeleteOrUpdateEnabledEntitlement), a pre-authorization must name a saved
 * scope, a unique name is created only with Prefer: create-if-missing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "../..");
const hook = path.join(root, "scripts/azd/registration.mjs");

interface App { id: string; appId: string; uniqueName?: string; displayName: string; [k: string]: unknown }
interface World {
  apps: Map<string, App>;
  sps: Set<string>;
  fics: Map<string, { id: string; name: string; issuer: string; subject: string; audiences: string[] }[]>;
  secrets: Map<string, string>;
  deletedVaults: Set<string>;
  log: string[];
  referencesBroken: boolean;
}

const world = (): World => ({ apps: new Map(), sps: new Set(), fics: new Map(), secrets: new Map(), deletedVaults: new Set(), log: [], referencesBroken: false });
let w = world();
let server: http.Server;
let base = "";
let tmp = "";

const send = (res: http.ServerResponse, status: number, body?: unknown) => {
  res.writeHead(status, body === undefined ? {} : { "content-type": "application/json" });
  res.end(body === undefined ? undefined : JSON.stringify(body));
};
const graphError = (res: http.ServerResponse, status: number, code: string, message: string) => send(res, status, { error: { code, message } });

/** Entra's checks on an application PATCH (the ones the old script ran into). */
function entitlementProblem(app: App, patch: Record<string, any>): string | undefined {
  const kept = (old: any[] | undefined, next: any[] | undefined) => (old ?? []).filter((e) => e.isEnabled).every((e) => (next ?? []).some((n) => n.id === e.id && n.value === e.value));
  if (patch.appRoles && !kept(app.appRoles as any[], patch.appRoles)) return "CannotDeleteOrUpdateEnabledEntitlement";
  const api = patch.api ?? {};
  if (api.oauth2PermissionScopes && !kept((app.api as any)?.oauth2PermissionScopes, api.oauth2PermissionScopes)) return "CannotDeleteOrUpdateEnabledEntitlement";
  const scopes = new Set(((api.oauth2PermissionScopes ?? (app.api as any)?.oauth2PermissionScopes ?? []) as any[]).map((s) => s.id));
  const savedScopes = new Set((((app.api as any)?.oauth2PermissionScopes ?? []) as any[]).map((s) => s.id));
  for (const p of api.preAuthorizedApplications ?? []) for (const id of p.delegatedPermissionIds) if (!savedScopes.has(id) || !scopes.has(id)) return "InvalidValue: preAuthorizedApplications names a scope that is not saved";
  return undefined;
}

function handle(req: http.IncomingMessage, body: string, res: http.ServerResponse) {
  const url = new URL(req.url!, "http://fake");
  const p = decodeURIComponent(url.pathname);
  w.log.push(`${req.method} ${p}`);
  if (!/^Bearer fake-token-/.test(req.headers.authorization ?? "")) return graphError(res, 401, "InvalidAuthenticationToken", "no token");
  const json = body ? JSON.parse(body) : undefined;
  let m: RegExpMatchArray | null;
  // ---- Graph
  if ((m = p.match(/^\/graph\/v1\.0\/applications\((appId|uniqueName)='([^']+)'\)$/))) {
    const find = [...w.apps.values()].find((a) => (m![1] === "appId" ? a.appId : a.uniqueName) === m![2]);
    if (req.method === "GET") return find ? send(res, 200, find) : graphError(res, 404, "Request_ResourceNotFound", "no such app");
    if (req.method === "PATCH" && m[1] === "uniqueName") {
      if (find) { Object.assign(find, json); return send(res, 204); }
      if (req.headers.prefer !== "create-if-missing") return graphError(res, 404, "Request_ResourceNotFound", "no such app");
      const app: App = { id: crypto.randomUUID(), appId: crypto.randomUUID(), uniqueName: m[2], ...json };
      w.apps.set(app.id, app);
      return send(res, 201, app);
    }
  }
  if ((m = p.match(/^\/graph\/v1\.0\/applications\/([0-9a-f-]{36})$/))) {
    const app = w.apps.get(m[1]!);
    if (!app) return graphError(res, 404, "Request_ResourceNotFound", "no such app");
    if (req.method === "GET") return send(res, 200, app);
    if (req.method === "PATCH") {
      const problem = entitlementProblem(app, json);
      if (problem) return graphError(res, 400, problem.split(":")[0]!, problem);
      const { api, ...rest } = json;
      Object.assign(app, rest);
      if (api) app.api = { ...(app.api as object), ...api };
      return send(res, 204);
    }
  }
  if ((m = p.match(/^\/graph\/v1\.0\/applications\/([0-9a-f-]{36})\/federatedIdentityCredentials(?:\/([0-9a-f-]{36}))?$/))) {
    const list = w.fics.get(m[1]!) ?? [];
    w.fics.set(m[1]!, list);
    if (req.method === "GET" && !m[2]) return send(res, 200, { value: list });
    if (req.method === "POST") {
      if (list.some((f) => f.name === json.name)) return graphError(res, 409, "Request_MultipleObjectsWithSameKeyValue", "name in use");
      const fic = { id: crypto.randomUUID(), ...json };
      list.push(fic);
      return send(res, 201, fic);
    }
    if (req.method === "PATCH" && m[2]) { Object.assign(list.find((f) => f.id === m![2])!, json); return send(res, 204); }
  }
  if ((m = p.match(/^\/graph\/v1\.0\/servicePrincipals\(appId='([^']+)'\)$/)) && req.method === "GET") {
    return w.sps.has(m[1]!) ? send(res, 200, { appId: m[1] }) : graphError(res, 404, "Request_ResourceNotFound", "no sp");
  }
  if (p === "/graph/v1.0/servicePrincipals" && req.method === "POST") {
    if (w.sps.has(json.appId)) return graphError(res, 409, "Request_MultipleObjectsWithSameKeyValue", "exists");
    w.sps.add(json.appId);
    return send(res, 201, { appId: json.appId });
  }
  // ---- Key Vault
  if ((m = p.match(/^\/kv\/secrets\/([a-z0-9-]+)$/))) {
    if (req.method === "GET") return w.secrets.has(m[1]!) ? send(res, 200, { value: w.secrets.get(m[1]!) }) : send(res, 404, { error: { code: "SecretNotFound" } });
    if (req.method === "PUT") { w.secrets.set(m[1]!, json.value); return send(res, 200, { id: m[1] }); }
  }
  // ---- ARM
  if ((m = p.match(/\/deletedVaults\/([^/]+)$/)) && req.method === "GET") {
    return w.deletedVaults.has(m[1]!) ? send(res, 200, { name: m[1] }) : send(res, 404, { error: { code: "ResourceNotFound" } });
  }
  if (p.endsWith("/config/configreferences/appsettings/refresh") && req.method === "POST") return send(res, 200, {});
  if ((m = p.match(/\/config\/configreferences\/appsettings\/(UMC_\w+)$/)) && req.method === "GET") {
    const name = m[1] === "UMC_WEBHOOK_SECRET" ? "umc-webhook-secret" : "unknown";
    const resolved = w.secrets.has(name) && !w.referencesBroken;
    return send(res, 200, { properties: { status: resolved ? "Resolved" : "SecretNotFound", details: resolved ? undefined : `secret ${name} not found` } });
  }
  return graphError(res, 400, "FakeUnknownRoute", `${req.method} ${p}`);
}

/** azd's environment between runs: what `azd env set` wrote plus the provision outputs. */
let azdEnv: Record<string, string> = {};
const azdEnvFile = () => path.join(tmp, "azd-env.json");

function runHook(phase: "preprovision" | "postprovision", extra: Record<string, string> = {}) {
  const stored = JSON.parse(fs.readFileSync(azdEnvFile(), "utf8")) as Record<string, string>;
  const env: Record<string, string> = {
    PATH: `${path.join(tmp, "bin")}:${process.env.PATH}`,
    UMC_HOOK_GRAPH_URL: `${base}/graph`,
    UMC_HOOK_ARM_URL: `${base}/arm`,
    UMC_HOOK_POLL_MS: "10",
    UMC_HOOK_REFERENCE_WAIT_MS: "200",
    AZD_ENV_FILE: azdEnvFile(),
    ...stored,
    ...extra,
  };
  return new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(process.execPath, [hook, phase], { env, encoding: "utf8" }, (e, _out, stderr) => resolve({ code: e ? Number(e.code ?? 1) : 0, stderr }));
  });
}

/** What Bicep would output after provisioning, given the preprovision values. */
function provision() {
  const stored = JSON.parse(fs.readFileSync(azdEnvFile(), "utf8"));
  Object.assign(stored, {
    AZURE_TENANT_ID: "0c0ffee0-0000-4000-8000-000000000001",
    AZURE_RESOURCE_GROUP: "rg-test",
    AZURE_FUNCTION_APP_NAME: "func-umconnect-test",
    UMC_PUBLIC_BASE_URL: "https://func-umconnect-test.azurewebsites.net",
    AZURE_MANAGED_IDENTITY_PRINCIPAL_ID: stored.AZURE_MANAGED_IDENTITY_PRINCIPAL_ID ?? crypto.randomUUID(),
    UMC_KEY_VAULT_URI: `${base}/kv/`,
  });
  fs.writeFileSync(azdEnvFile(), JSON.stringify(stored));
}

function freshEnv(values: Record<string, string> = {}) {
  azdEnv = { AZURE_ENV_NAME: "prod", AZURE_LOCATION: "westeurope", AZURE_SUBSCRIPTION_ID: "00000000-0000-4000-8000-00000000beef", ...values };
  fs.writeFileSync(azdEnvFile(), JSON.stringify(azdEnv));
  fs.writeFileSync(path.join(tmp, "azd-calls.log"), "");
}
const writes = () => w.log.filter((l) => !l.startsWith("GET "));
const azdCalls = () => fs.readFileSync(path.join(tmp, "azd-calls.log"), "utf8").split("\n").filter(Boolean);

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "umc-hooks-"));
  fs.mkdirSync(path.join(tmp, "bin"));
  // `az`: a token per resource (the fake checks it is sent), nothing else.
  fs.writeFileSync(path.join(tmp, "bin/az"), `#!/bin/sh\n[ "$1 $2" = "account get-access-token" ] && { echo "fake-token-$4"; exit 0; }\necho "az stub: unexpected $*" >&2; exit 1\n`, { mode: 0o755 });
  // `azd env set K V`: recorded, and kept in the environment file the next hook run starts from.
  fs.writeFileSync(path.join(tmp, "bin/azd"), `#!/usr/bin/env node\nconst fs=require("fs");const [,,a,b,k,v]=process.argv;fs.appendFileSync(process.env.AZD_ENV_FILE.replace("azd-env.json","azd-calls.log"),process.argv.slice(2).join(" ")+"\\n");if(a!=="env"||b!=="set")process.exit(1);const f=process.env.AZD_ENV_FILE;const e=JSON.parse(fs.readFileSync(f,"utf8"));e[k]=v;fs.writeFileSync(f,JSON.stringify(e));\n`, { mode: 0o755 });
  server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => handle(req, body, res));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  fs.rmSync(tmp, { recursive: true, force: true });
});

const GRAPH_ROLES = ["798ee544-9d2d-430c-a058-570e29e34338", "6918b873-d17a-4dc1-b314-35f528134491", "e2a3a72e-5f79-4c64-b1b1-878b674786c9", "df021288-bdef-4463-88db-98f22de89214"];

describe("azd hooks: app registration, Key Vault, secrets", () => {
  it("set everything up on the first azd up, and change nothing on the second", async () => {
    w = world();
    freshEnv();
    expect(await runHook("preprovision")).toMatchObject({ code: 0 });
    provision();
    const post = await runHook("postprovision");
    expect(post.stderr).not.toContain("FAILED");
    expect(post.code).toBe(0);

    // One app, with the Graph application permissions once each, the admin role and scope,
    // its identifier URI, the consent redirect URI, and a service principal.
    expect(w.apps.size).toBe(1);
    const app = [...w.apps.values()][0]! as any;
    expect(app.requiredResourceAccess).toHaveLength(1);
    expect(app.requiredResourceAccess[0].resourceAccess.map((r: any) => `${r.id}:${r.type}`).sort()).toEqual(GRAPH_ROLES.map((id) => `${id}:Role`).sort());
    expect(app.appRoles.map((r: any) => r.value)).toEqual(["Umconnect.Admin"]);
    expect(app.identifierUris).toEqual([`api://${app.appId}`]);
    expect(app.api.preAuthorizedApplications[0].delegatedPermissionIds).toEqual([app.api.oauth2PermissionScopes[0].id]);
    expect(app.web.redirectUris).toEqual(["https://func-umconnect-test.azurewebsites.net/api/admin/consent/callback"]);
    expect(w.sps.has(app.appId)).toBe(true);
    const env = JSON.parse(fs.readFileSync(azdEnvFile(), "utf8"));
    expect(env.UMC_APP_CLIENT_ID).toBe(app.appId);
    expect(env.UMC_KEY_VAULT_NAME).toMatch(/^kv-umc-[0-9a-f]{12}$/);
    expect(env.UMC_KEY_VAULT_CREATE_MODE).toBe("default");
    // The managed identity is the app's federated credential; the secrets exist.
    const fics = w.fics.get(app.id)!;
    expect(fics).toHaveLength(1);
    expect(fics[0]).toMatchObject({ subject: env.AZURE_MANAGED_IDENTITY_PRINCIPAL_ID, issuer: "https://login.microsoftonline.com/0c0ffee0-0000-4000-8000-000000000001/v2.0", audiences: ["api://AzureADTokenExchange"] });
    expect([...w.secrets.keys()]).toEqual(["umc-webhook-secret"]);
    expect(w.secrets.get("umc-webhook-secret")!.length).toBeGreaterThanOrEqual(32);
    const secretsBefore = new Map(w.secrets);
    // No private key or certificate anywhere on disk.
    expect(fs.readdirSync(root).filter((f) => /\.(pem|key|crt|pfx)$/.test(f))).toEqual([]);

    // Second azd up: reads only.
    w.log = [];
    fs.writeFileSync(path.join(tmp, "azd-calls.log"), "");
    expect(await runHook("preprovision")).toMatchObject({ code: 0 });
    provision();
    expect(await runHook("postprovision")).toMatchObject({ code: 0 });
    expect(writes()).toEqual([]);
    expect(azdCalls()).toEqual([]);
    expect(w.log.length).toBeGreaterThan(5);
    expect(w.secrets).toEqual(secretsBefore);
  }, 60_000);

  it("adopts an app made by the old script: keeps its role and scope ids, permissions once", async () => {
    w = world();
    const roleId = crypto.randomUUID();
    const scopeId = crypto.randomUUID();
    const old: App = {
      id: crypto.randomUUID(), appId: crypto.randomUUID(), displayName: "umconnect", signInAudience: "AzureADMultipleOrgs",
      // The old script appended the permissions on every run.
      requiredResourceAccess: [{ resourceAppId: "00000003-0000-0000-c000-000000000000", resourceAccess: [...GRAPH_ROLES, ...GRAPH_ROLES].map((id) => ({ id, type: "Role" })) }],
      appRoles: [{ id: roleId, allowedMemberTypes: ["User"], description: "x", displayName: "x", isEnabled: true, value: "Umconnect.Admin" }],
      api: { requestedAccessTokenVersion: 2, oauth2PermissionScopes: [{ id: scopeId, value: "admin", type: "Admin", isEnabled: true, adminConsentDisplayName: "x", adminConsentDescription: "x" }] },
    };
    w.apps.set(old.id, old);
    freshEnv({ UMC_APP_CLIENT_ID: old.appId });
    const pre = await runHook("preprovision");
    expect(pre.stderr).not.toContain("FAILED");
    expect(pre.code).toBe(0);
    const app = w.apps.get(old.id) as any;
    expect(w.apps.size).toBe(1);
    expect(app.appRoles[0].id).toBe(roleId);
    expect(app.api.oauth2PermissionScopes[0].id).toBe(scopeId);
    expect(app.requiredResourceAccess[0].resourceAccess).toHaveLength(4);
    expect(w.sps.has(old.appId)).toBe(true);
  }, 60_000);

  it("asks for GroupMember.Read.All only once group linking is switched on, and then once", async () => {
    w = world();
    freshEnv();
    expect(await runHook("preprovision")).toMatchObject({ code: 0 });
    const roles = () => ([...w.apps.values()][0] as any).requiredResourceAccess[0].resourceAccess.map((r: any) => r.id).sort();
    expect(roles()).toEqual([...GRAPH_ROLES].sort());
    // `azd env set UMC_GROUP_LINKING true`, then `azd provision`.
    fs.writeFileSync(azdEnvFile(), JSON.stringify({ ...JSON.parse(fs.readFileSync(azdEnvFile(), "utf8")), UMC_GROUP_LINKING: "true" }));
    expect(await runHook("preprovision")).toMatchObject({ code: 0 });
    expect(roles()).toEqual([...GRAPH_ROLES, "98830695-27a2-44f7-8c18-0c3ebc9698f6"].sort());
    w.log = [];
    expect(await runHook("preprovision")).toMatchObject({ code: 0 });
    expect(writes()).toEqual([]);
  }, 60_000);

  it("refuses a client id that is no app in the tenant, saying what to do", async () => {
    w = world();
    freshEnv({ UMC_APP_CLIENT_ID: "11111111-2222-4333-8444-555555555555" });
    const r = await runHook("preprovision");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/UMC_APP_CLIENT_ID=11111111-2222-4333-8444-555555555555 is no app registration in this tenant: check the id/);
    expect(writes()).toEqual([]);
  });

  it("refuses a region without Flex Consumption before creating anything", async () => {
    w = world();
    freshEnv({ AZURE_LOCATION: "westindia" });
    const r = await runHook("preprovision");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/AZURE_LOCATION=westindia has no Flex Consumption plan; pick one of: .*westeurope/);
    expect(w.log).toEqual([]);
  });

  it("recovers this environment's soft-deleted Key Vault (azd down without --purge)", async () => {
    w = world();
    freshEnv({ UMC_KEY_VAULT_NAME: "kv-umc-0123456789ab", UMC_KEY_VAULT_CREATE_MODE: "default" });
    w.deletedVaults.add("kv-umc-0123456789ab");
    expect(await runHook("preprovision")).toMatchObject({ code: 0 });
    expect(JSON.parse(fs.readFileSync(azdEnvFile(), "utf8")).UMC_KEY_VAULT_CREATE_MODE).toBe("recover");
    // Recovered: the next run goes back to default.
    w.deletedVaults.clear();
    expect(await runHook("preprovision")).toMatchObject({ code: 0 });
    expect(JSON.parse(fs.readFileSync(azdEnvFile(), "utf8")).UMC_KEY_VAULT_CREATE_MODE).toBe("default");
  }, 60_000);

  it("fails when the app's Key Vault references do not resolve, saying why", async () => {
    w = world();
    freshEnv();
    expect(await runHook("preprovision")).toMatchObject({ code: 0 });
    provision();
    w.referencesBroken = true;
    const r = await runHook("postprovision");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Key Vault references do not resolve \(UMC_WEBHOOK_SECRET: SecretNotFound secret umc-webhook-secret not found\): check that the secrets exist/);
  }, 60_000);
});
