/**
 * No Bicep compiler can be downloaded here (shared/reference/env-recipes.md section 8), so the
 * templates are checked as text for what matters: settings in step with src/config.ts, no
 * secrets in parameters or outputs, locked-down storage and TLS, role ids matching their
 * names, modules that exist, and the app registration's exact permission set.
 */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { CONFIG_KEYS, loadConfig } from "../../src/config.js";

const root = path.resolve(import.meta.dirname, "../..");
const read = (p: string) => fs.readFileSync(path.join(root, p), "utf8");
const bicepFiles = ["infra/main.bicep", ...fs.readdirSync(path.join(root, "infra/app")).filter((f) => f.endsWith(".bicep")).map((f) => `infra/app/${f}`)];
const all = bicepFiles.map((f) => ({ f, text: read(f) }));
const api = read("infra/app/api.bicep");
const appSettings = [...api.matchAll(/\{\s*name:\s*'([A-Za-z0-9_]+)'\s*,\s*value:/g)].map((m) => m[1]!);

describe("infra as code", () => {
  it("sets exactly the settings src/config.ts reads, and they satisfy it in Azure", () => {
    const umc = appSettings.filter((s) => s.startsWith("UMC_"));
    for (const s of umc) expect(CONFIG_KEYS, `${s} is not a config key`).toContain(s);
    const env = Object.fromEntries(umc.map((k) => [k, k === "UMC_ENVIRONMENT" ? "azure" : k.endsWith("_URI") || k.endsWith("_URL") ? "https://example.test/" : k === "UMC_LOG_LEVEL" ? "info" : k === "UMC_SYNC_QUEUE" ? "sync-mailbox" : k === "UMC_ADMIN_TENANT_ID" ? "0c0ffee0-0000-4000-8000-000000000001" : "x".repeat(40)]));
    expect(() => loadConfig(env)).not.toThrow();
    // And nothing required is missing: dropping any one required setting breaks the config.
    // (UMC_STORE_NOTIFY_SECRET is obsolete: each voice-store endpoint has its own signing secret.)
    for (const k of ["UMC_CLIENT_ID", "UMC_PUBLIC_BASE_URL", "UMC_WEBHOOK_SECRET", "UMC_MANAGED_IDENTITY_CLIENT_ID", "UMC_ADMIN_TENANT_ID", "UMC_KEY_VAULT_URI"]) {
      expect(umc).toContain(k);
      const { [k]: _gone, ...rest } = env;
      expect(() => loadConfig(rest), `${k} should be required`).toThrow();
    }
  });

  it("keeps secrets out of parameters, outputs and app settings", () => {
    for (const { f, text } of all) {
      for (const m of text.matchAll(/@secure\(\)\s*\n\s*param\s+\w+\s+\w+\s*(=.*)?/g)) expect(m[1], `${f}: a @secure param has a default`).toBeUndefined();
      for (const m of text.matchAll(/^output\s+(\w+)\s+\w+\s*=\s*(.*)$/gm)) {
        // The Application Insights connection string only identifies the resource (local auth is off).
        if (f.endsWith("monitoring.bicep") && m[1] === "connectionString") continue;
        expect(m[1]!.toLowerCase().replace(/key_?vault/g, ""), `${f}: output ${m[1]}`).not.toMatch(/key|secret|password|connectionstring/);
        expect(m[2], `${f}: output ${m[1]}`).not.toMatch(/listKeys|listSecrets/i);
      }
      expect(text, f).not.toMatch(/listKeys\(|AccountKey=/);
    }
    // Secret-valued settings are Key Vault references, never literal values.
    expect(api).toMatch(/name: 'UMC_WEBHOOK_SECRET', value: '@Microsoft\.KeyVault\(SecretUri=/);
    expect(api).toMatch(/name: 'UMC_STORE_NOTIFY_SECRET', value: '@Microsoft\.KeyVault\(SecretUri=/);
    expect(appSettings).not.toContain("UMC_CLIENT_SECRET");
    expect(appSettings).not.toContain("UMC_STORAGE_CONNECTION_STRING");
    expect(JSON.parse(read("infra/main.parameters.json")).parameters).not.toHaveProperty("clientSecret");
  });

  it("locks storage down and requires TLS 1.2 over https", () => {
    const storage = read("infra/app/storage.bicep");
    expect(storage).toMatch(/allowSharedKeyAccess: false/);
    expect(storage).toMatch(/minimumTlsVersion: 'TLS1_2'/);
    expect(storage).toMatch(/supportsHttpsTrafficOnly: true/);
    expect(storage).toMatch(/allowBlobPublicAccess: false/);
    expect(api).toMatch(/httpsOnly: true/);
    expect(api).toMatch(/minTlsVersion: '1\.2'/);
    expect(api).toMatch(/ftpsState: 'Disabled'/);
    expect(api).toMatch(/AzureWebJobsStorage__credential', value: 'managedidentity'/);
    expect(read("infra/app/keyvault.bicep")).toMatch(/enableRbacAuthorization: true/);
    expect(read("infra/app/monitoring.bicep")).toMatch(/DisableLocalAuth: true/);
  });

  it("uses built-in role ids that match their commented names", () => {
    // https://learn.microsoft.com/en-us/azure/role-based-access-control/built-in-roles
    const builtIn: Record<string, string> = {
      "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
      "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
      "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
      "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
      "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
      "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    };
    const rbac = read("infra/app/rbac.bicep");
    const found = [...rbac.matchAll(/'([0-9a-f-]{36})'\s*\/\/\s*([^:]+):/g)];
    expect(found.length).toBeGreaterThanOrEqual(6);
    for (const [, id, name] of found) expect(builtIn[id!], id).toBe(name!.trim());
    // Assignment names are stable (guid of scope, principal, role).
    for (const m of rbac.matchAll(/roleAssignments@[^']+' = (?:if \([^)]*\) )?\{\s*name:\s*([^\n]+)/g)) expect(m[1]).toMatch(/^guid\(/);
  });

  it("references only modules that exist, and azd finds its paths", () => {
    for (const { f, text } of all) {
      for (const m of text.matchAll(/module\s+\w+\s+'([^']+)'/g)) expect(fs.existsSync(path.join(path.dirname(path.join(root, f)), m[1]!)), `${f} -> ${m[1]}`).toBe(true);
    }
    const azure = read("azure.yaml");
    expect(azure).toMatch(/path: infra/);
    expect(azure).toMatch(/host: function/);
    const params = Object.keys(JSON.parse(read("infra/main.parameters.json")).parameters);
    for (const m of read("infra/main.bicep").matchAll(/^param\s+(\w+)\s+\w+(\s*=)?/gm)) {
      if (!m[2]) expect(params, `param ${m[1]} needs a value`).toContain(m[1]);
    }
  });

  it("asks for exactly the Graph application permissions the code uses", () => {
    const script = read("scripts/create-app-registration.sh");
    const roles = [...script.matchAll(/"([0-9a-f-]{36})=([A-Za-z.]+)"/g)].map((m) => `${m[2]}:${m[1]}`).sort();
    // https://learn.microsoft.com/en-us/graph/permissions-reference (application permission ids)
    expect(roles).toEqual([
      "Calendars.Read:798ee544-9d2d-430c-a058-570e29e34338",
      "Contacts.ReadWrite:6918b873-d17a-4dc1-b314-35f528134491",
      "Mail.ReadWrite:e2a3a72e-5f79-4c64-b1b1-878b674786c9",
      "User.Read.All:df021288-bdef-4463-88db-98f22de89214",
    ]);
  });
});
