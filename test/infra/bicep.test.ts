/**
 * infra/ compiled and linted by the real Bicep CLI (pinned 0.49.2, restored from NuGet by
 * scripts/setup.sh into .local/bin/bicep, or `bicep` on PATH), with every linter rule an error
 * (infra/bicepconfig.json) and any compiler warning a failure. The rules that matter are then
 * checked on the compiled ARM JSON, which is what Azure receives: only siteConfig properties
 * Flex Consumption accepts, identity-based connections for every trigger, every setting
 * src/config.ts requires in Azure, deterministic role assignment names, no secret in outputs.
 *
 * Without a .NET SDK and without bicep on PATH (a plain Debian machine) nothing can be compiled:
 * the suite then says so loudly and checks only the text; with CI set (.ci/run) it fails instead.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { execFile, execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { CONFIG_KEYS, loadConfig } from "../../src/config.js";
import { functionDefinitions } from "../../functions/registry.js";

const root = path.resolve(import.meta.dirname, "../..");
const read = (p: string) => fs.readFileSync(path.join(root, p), "utf8");

const onPath = (cmd: string): string | undefined => {
  try { return execFileSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).trim() || undefined; } catch { return undefined; }
};

/** Where the Bicep CLI is, or why there is none. */
export function findBicep(): { bin: string } | { reason: string; canInstall: boolean } {
  const local = path.join(root, ".local/bin/bicep");
  if (fs.existsSync(local)) return { bin: local };
  const global = onPath("bicep");
  if (global) return { bin: global };
  const dotnet = onPath("dotnet");
  return dotnet
    ? { reason: `no Bicep CLI, but a .NET SDK is at ${dotnet}: run scripts/setup.sh (it restores Azure.Bicep.CommandLine.linux-x64 0.49.2 into .local/nuget)`, canInstall: true }
    : { reason: "no .NET SDK (to restore the Bicep CLI from NuGet) and no `bicep` on PATH", canInstall: false };
}

const run = (bin: string, args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
  execFile(bin, args, { cwd: root, encoding: "utf8", maxBuffer: 64 << 20, env: { ...process.env, DOTNET_CLI_TELEMETRY_OPTOUT: "1" } }, (e, stdout, stderr) => resolve({ code: e ? (typeof e.code === "number" ? e.code : 1) : 0, stdout, stderr }));
});

type Json = Record<string, any>;
/** Every resource of a compiled template, modules (nested deployments) included. */
function resources(template: Json): Json[] {
  const list: Json[] = Array.isArray(template.resources) ? template.resources : Object.values(template.resources ?? {});
  return list.flatMap((r) => (r.type === "Microsoft.Resources/deployments" && r.properties?.template ? [r, ...resources(r.properties.template)] : [r]));
}
/** Every template: main and each module's. */
function templates(template: Json, name = "main"): { name: string; t: Json }[] {
  const list: Json[] = Array.isArray(template.resources) ? template.resources : Object.values(template.resources ?? {});
  return [{ name, t: template }, ...list.filter((r) => r.type === "Microsoft.Resources/deployments" && r.properties?.template).flatMap((r) => templates(r.properties.template, r.name))];
}

const found = findBicep();
let arm: Json = {};

describe("the Bicep compiler", () => {
  it("is here (CI never skips the compiled checks)", () => {
    if ("bin" in found) return;
    // A machine that could have it (a .NET SDK) or CI must compile: say what to do and fail.
    if (process.env.CI || found.canInstall) throw new Error(`test/infra cannot compile infra/main.bicep: ${found.reason}`);
    const line = "!".repeat(100);
    console.warn(`${line}\n!! test/infra COMPILED NOTHING: ${found.reason}.\n!! The compiled-template checks did not run; only text checks did. Install a .NET SDK and run scripts/setup.sh.\n${line}`);
    expect(found.canInstall).toBe(false);
  });
});

describe.runIf("bin" in found)("infra compiled to ARM JSON", () => {
  beforeAll(async () => {
    const bin = (found as { bin: string }).bin;
    // Lint and build together (each takes seconds of CPU); diagnostics go to stderr.
    const [lint, build] = await Promise.all([run(bin, ["lint", "infra/main.bicep"]), run(bin, ["build", "infra/main.bicep", "--stdout"])]);
    const diagnostics = `${lint.stdout}${lint.stderr}${build.stderr}`.split("\n").filter((l) => /: (Warning|Error) /.test(l));
    if (lint.code !== 0 || build.code !== 0 || diagnostics.length) throw new Error(`bicep lint/build failed (warnings count as errors):\n${diagnostics.join("\n") || lint.stderr + build.stderr}`);
    arm = JSON.parse(build.stdout);
  }, 300_000);

  const site = () => resources(arm).find((r) => r.type === "Microsoft.Web/sites")!;
  const settings = () => new Map<string, string>((site().properties.siteConfig.appSettings as { name: string; value: string }[]).map((s) => [s.name, s.value]));

  it("gives the Flex Consumption app only what Flex accepts", () => {
    const props = site().properties;
    // siteConfig on Flex: app settings and the minimum TLS version, nothing else. Runtime, scale, always-ready and
    // deployment storage live in functionAppConfig; ftpsState (ARM error 51021), alwaysOn,
    // linuxFxVersion, functionAppScaleLimit and the like are refused or deprecated
    // (https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations).
    expect(Object.keys(props.siteConfig).sort()).toEqual(["appSettings", "minTlsVersion"]);
    expect(props.siteConfig.minTlsVersion).toBe("1.2");
    expect(props.httpsOnly).toBe(true);
    const deprecated = ["FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_CONTENTSHARE", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_NODE_DEFAULT_VERSION", "SCM_DO_BUILD_DURING_DEPLOYMENT", "ENABLE_ORYX_BUILD", "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT", "WEBSITE_TIME_ZONE", "TZ", "AzureWebJobsStorage"];
    for (const name of deprecated) expect(settings().has(name), name).toBe(false);
    expect(props.functionAppConfig.runtime).toEqual({ name: "node", version: "22" });
    // Basic-auth publishing is switched off with the policies instead of ftpsState.
    const policies = resources(arm).filter((r) => r.type === "Microsoft.Web/sites/basicPublishingCredentialsPolicies");
    expect(policies.map((p) => String(p.name).match(/'(ftp|scm)'\)\]$/)?.[1]).sort()).toEqual(["ftp", "scm"]);
    for (const p of policies) expect(p.properties.allow).toBe(false);
    // The plan is the FC1 SKU and does not carry the azd service tag (only the app does).
    const plan = resources(arm).find((r) => r.type === "Microsoft.Web/serverfarms")!;
    expect(plan.sku).toEqual({ name: "FC1", tier: "FlexConsumption" });
    expect(JSON.stringify(plan.tags)).not.toContain("azd-service-name");
    expect(JSON.stringify(site().tags)).toContain("azd-service-name");
  });

  it("keeps one HTTP instance always ready by default (a parameter)", () => {
    expect(arm.parameters.alwaysReadyHttpInstances).toMatchObject({ type: "int", defaultValue: 1 });
    const scale = site().properties.functionAppConfig.scaleAndConcurrency;
    expect(scale.alwaysReady).toMatch(/parameters\('alwaysReadyHttpInstances'\)/);
    expect(scale.alwaysReady).toMatch(/'name', 'http'/);
  });

  it("sizes the timers' fan-out by a parameter (default 16, the product's own default)", () => {
    expect(arm.parameters.scheduleShards).toMatchObject({ type: "int", defaultValue: 16, minValue: 1, maxValue: 1024 });
    expect(settings().get("UMC_SCHEDULE_SHARDS")).toMatch(/parameters\('scheduleShards'\)/);
    expect(read("src/config.ts")).toMatch(/UMC_SCHEDULE_SHARDS: int\(1, 1024\)\.default\(16\)/);
  });

  it("deploys only to regions with Flex Consumption", () => {
    const allowed: string[] = arm.parameters.location.allowedValues;
    expect(allowed).toContain("westeurope");
    expect(allowed).toContain("eastus");
    // No canary, sovereign or Flex-less regions.
    for (const r of ["eastus2euap", "usgovvirginia", "chinaeast2", "westindia"]) expect(allowed).not.toContain(r);
  });

  it("connects every trigger through the managed identity", () => {
    const s = settings();
    const connections = new Set(["AzureWebJobsStorage", ...functionDefinitions.flatMap((d) => (d.trigger.kind === "queue" ? [d.trigger.connection] : []))]);
    for (const c of connections) {
      // https://learn.microsoft.com/azure/azure-functions/functions-reference#configure-an-identity-based-connection
      expect(s.has(c), `${c} as a connection string`).toBe(false);
      expect(s.get(`${c}__credential`), c).toBe("managedidentity");
      expect(s.get(`${c}__clientId`), c).toMatch(/clientId/);
      expect(s.has(`${c}__queueServiceUri`) || s.has(`${c}__accountName`), `${c}: queue endpoint`).toBe(true);
    }
    const deployment = site().properties.functionAppConfig.deployment.storage;
    expect(deployment.authentication.type).toBe("UserAssignedIdentity");
    // Key Vault references resolve with the same user-assigned identity (not a system identity the app lacks).
    expect(site().properties.keyVaultReferenceIdentity).toBe(deployment.authentication.userAssignedIdentityResourceId);
    expect(Object.keys(site().identity.userAssignedIdentities)).toHaveLength(1);
  });

  it("sets every setting src/config.ts requires in Azure, and only its own", () => {
    const umc = [...settings().keys()].filter((s) => s.startsWith("UMC_"));
    for (const s of umc) expect(CONFIG_KEYS, `${s} is not a config key`).toContain(s);
    const sample = (k: string) => k === "UMC_ENVIRONMENT" ? "azure" : k.endsWith("_URI") || k.endsWith("_URL") ? "https://example.test/" : k === "UMC_LOG_LEVEL" ? "info" : k === "UMC_SYNC_QUEUE" ? "sync-mailbox" : k === "UMC_ADMIN_TENANT_ID" ? "0c0ffee0-0000-4000-8000-000000000001" : k === "UMC_SCHEDULE_SHARDS" ? "16" : "x".repeat(40);
    const env = Object.fromEntries(umc.map((k) => [k, sample(k)]));
    expect(() => loadConfig(env)).not.toThrow();
    // And nothing required is missing: dropping any one required setting breaks the config.
    // (UMC_STORE_NOTIFY_SECRET is obsolete: each voice-store endpoint has its own signing secret.)
    for (const k of ["UMC_CLIENT_ID", "UMC_PUBLIC_BASE_URL", "UMC_WEBHOOK_SECRET", "UMC_MANAGED_IDENTITY_CLIENT_ID", "UMC_ADMIN_TENANT_ID", "UMC_KEY_VAULT_URI"]) {
      expect(umc).toContain(k);
      const { [k]: _gone, ...rest } = env;
      expect(() => loadConfig(rest), `${k} should be required`).toThrow();
    }
    expect(settings().get("UMC_ENVIRONMENT")).toBe("azure");
    // Secret-valued settings are Key Vault references to the secrets the postprovision hook creates.
    for (const [k, name] of [["UMC_WEBHOOK_SECRET", "umc-webhook-secret"]]) {
      expect(settings().get(k!)).toMatch(new RegExp(`^\\[format\\('@Microsoft\\.KeyVault\\(SecretUri=\\{0\\}secrets/${name}/\\)'`));
      expect(read("scripts/azd/registration.mjs")).toContain(`"${name}"`);
    }
    // Obsolete or refused in Azure: store pushes are signed per endpoint; no client secret, keys, local token or lab allow-list.
    for (const k of ["UMC_STORE_NOTIFY_SECRET", "UMC_CLIENT_SECRET", "UMC_STORAGE_CONNECTION_STRING", "UMC_ADMIN_TOKEN", "UMC_OUTBOUND_ALLOW_HOSTS"]) expect(settings().has(k), k).toBe(false);
  });

  it("names role assignments from compile-time values only", () => {
    const assignments = resources(arm).filter((r) => r.type === "Microsoft.Authorization/roleAssignments");
    // App: blob/queue/table (one loop), secrets, metrics; deployer: queue/table (one loop), secrets.
    expect(assignments.length).toBe(5);
    for (const a of assignments) {
      expect(a.name, a.name).toMatch(/^\[guid\(/);
      // reference() or newGuid()/utcNow() would give a new name on a redeploy: a duplicate assignment (RoleAssignmentExists).
      expect(a.name, a.name).not.toMatch(/reference\(|newGuid|utcNow|\.outputs\./);
    }
    // The deployer (AZURE_PRINCIPAL_ID) gets the data roles the operator CLI and the hooks use.
    const rbac = templates(arm).find((t) => t.name === "rbac")!.t;
    const roleIds = rbac.variables.roles as Record<string, string>;
    const role = (expr: string) => roleIds[expr.match(/variables\('roles'\)\.(\w+)/)![1]!];
    const deployerRoles = assignments.filter((a) => a.properties.principalId === "[parameters('deployerPrincipalId')]").flatMap((a) => {
      const loop = String(a.properties.roleDefinitionId).match(/variables\('(\w+)'\)\[copyIndex\(\)\]/);
      return loop ? (rbac.variables[loop[1]!] as string[]).map(role) : [role(a.properties.roleDefinitionId)];
    });
    expect(deployerRoles.sort()).toEqual([
      "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", // Storage Table Data Contributor
      "974c5e8b-45b9-4653-ba55-5f855dd0fb88", // Storage Queue Data Contributor
      "b86a8fe4-44ce-4948-aee5-eccb2c155cd7", // Key Vault Secrets Officer
    ]);
    expect(read("infra/main.parameters.json")).toMatch(/"deployerPrincipalId": \{ "value": "\$\{AZURE_PRINCIPAL_ID=\}" \}/);
  });

  it("keeps secrets out of outputs and parameters; outputs what operators need", () => {
    for (const { name, t } of templates(arm)) {
      for (const [p, def] of Object.entries<Json>(t.parameters ?? {})) {
        if (/secure/i.test(def.type)) expect(def.defaultValue, `${name}: secure parameter ${p} has a default`).toBeUndefined();
      }
      for (const [o, def] of Object.entries<Json>(t.outputs ?? {})) {
        expect(def.type, `${name}: output ${o}`).not.toMatch(/secure/i);
        expect(JSON.stringify(def.value), `${name}: output ${o}`).not.toMatch(/listKeys|listSecrets|listCredentials|AccountKey=/i);
        // The Application Insights connection string only identifies the resource (local auth is off).
        if (name === "monitoring" && o === "connectionString") continue;
        expect(o.toLowerCase().replace(/key_?vault/g, ""), `${name}: output ${o}`).not.toMatch(/key|secret|password|connectionstring/);
      }
    }
    expect(JSON.stringify(arm)).not.toMatch(/listKeys\(|AccountKey=/);
    for (const o of ["UMC_TABLE_SERVICE_URI", "UMC_QUEUE_SERVICE_URI", "UMC_KEY_VAULT_URI", "AZURE_KEY_VAULT_NAME", "AZURE_MANAGED_IDENTITY_PRINCIPAL_ID", "UMC_PUBLIC_BASE_URL"]) expect(arm.outputs, o).toHaveProperty(o);
  });

  it("locks storage down; Key Vault can be recreated after azd down", () => {
    const account = resources(arm).find((r) => r.type === "Microsoft.Storage/storageAccounts")!.properties;
    expect(account).toMatchObject({ allowSharedKeyAccess: false, allowBlobPublicAccess: false, minimumTlsVersion: "TLS1_2", supportsHttpsTrafficOnly: true });
    const vault = resources(arm).find((r) => r.type === "Microsoft.KeyVault/vaults")!.properties;
    expect(vault.enableRbacAuthorization).toBe(true);
    // Key Vault refuses an explicit enablePurgeProtection=false; off must be absent (null).
    expect(vault.enablePurgeProtection).toMatch(/if\(parameters\('purgeProtection'\), true\(\), null\(\)\)/);
    expect(vault.createMode).toMatch(/parameters\('createMode'\)/);
    expect(arm.parameters.keyVaultPurgeProtection.defaultValue).toBe(false);
    expect(arm.parameters.keyVaultCreateMode.allowedValues).toEqual(["default", "recover"]);
    const insights = resources(arm).find((r) => r.type === "Microsoft.Insights/components")!.properties;
    expect(insights.DisableLocalAuth).toBe(true);
  });

  it("wires the network path to the store: off by default; on, the app's outbound leaves through the NAT gateway's one IP", () => {
    for (const p of ["enableNetworkPath", "enablePrivateEndpoints"]) expect(arm.parameters[p], p).toMatchObject({ type: "bool", defaultValue: false });
    const network = resources(arm).find((r) => r.type === "Microsoft.Resources/deployments" && /'network'|^network$/.test(String(r.name)))!;
    expect(network, "infra/main.bicep calls app/network.bicep").toBeDefined();
    expect(network.properties.parameters.enableNetworkPath.value).toMatch(/parameters\('enableNetworkPath'\)/);
    // Private endpoints get names (resolved inside the module), never run-time ids.
    expect(network.properties.parameters.storageAccountName.value).toMatch(/names'\)\.storage/);
    expect(network.properties.parameters.keyVaultName.value).toMatch(/names'\)\.keyVault/);
    const inner = resources(network.properties.template);
    const vnet = inner.find((r) => r.type === "Microsoft.Network/virtualNetworks")!;
    const appSubnet = vnet.properties.subnets.find((s: Json) => s.name === "app");
    expect(appSubnet.properties.delegations[0].properties.serviceName).toBe("Microsoft.App/environments");
    expect(JSON.stringify(appSubnet.properties.natGateway)).toMatch(/natGateways/);
    expect(inner.find((r) => r.type === "Microsoft.Network/natGateways")!.properties.idleTimeoutInMinutes).toBe(30);
    for (const r of inner.filter((x) => String(x.type).startsWith("Microsoft.Network/"))) expect(r.condition, `${r.type} only when switched on`).toBeDefined();
    // The app integrates with the module's subnet (null when off: no VNet integration).
    expect(site().properties.virtualNetworkSubnetId).toMatch(/if\(empty\(parameters\('virtualNetworkSubnetId'\)\), null\(\)/);
    const api = resources(arm).find((r) => r.type === "Microsoft.Resources/deployments" && /'api'|^api$/.test(String(r.name)))!;
    expect(api.properties.parameters.virtualNetworkSubnetId.value).toMatch(/'network'.*outputs\.appSubnetId/);
    expect(arm.outputs.UMC_OUTBOUND_IP.value).toMatch(/'network'.*outputs\.outboundIp/);
  });

  it("gives every required parameter a value from the azd environment", () => {
    const params = JSON.parse(read("infra/main.parameters.json")).parameters as Json;
    for (const [p, def] of Object.entries<Json>(arm.parameters)) {
      if (def.defaultValue === undefined) expect(params, `param ${p} needs a value`).toHaveProperty(p);
    }
    for (const p of Object.keys(params)) expect(arm.parameters, `main.parameters.json sets unknown ${p}`).toHaveProperty(p);
  });
});

describe("infra as text (also without a compiler)", () => {
  it("uses built-in role ids that match their commented names", () => {
    // https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
    const builtIn: Record<string, string> = {
      "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
      "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
      "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
      "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
      "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
      "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    };
    const found = [...read("infra/app/rbac.bicep").matchAll(/'([0-9a-f-]{36})'\s*\/\/\s*([^:]+):/g)];
    expect(found.length).toBe(6);
    for (const [, id, name] of found) expect(builtIn[id!], id).toBe(name!.trim());
  });

  it("wires azd: infra path, function host, the registration hooks", () => {
    const azure = read("azure.yaml");
    expect(azure).toMatch(/path: infra/);
    expect(azure).toMatch(/host: function/);
    expect(azure).toMatch(/preprovision:[\s\S]*registration\.mjs preprovision/);
    expect(azure).toMatch(/postprovision:[\s\S]*registration\.mjs postprovision/);
    // The package: built, runtime dependencies only; the working copy gets its tools back after.
    expect(azure).toMatch(/prepackage:[\s\S]*run: npm ci && npm run build && npm prune --omit=dev\n/);
    expect(azure).toMatch(/postpackage:[\s\S]*run: npm ci\n/);
  });

  it("scopes mailboxes loudly: stops on errors, never assigns a role without the scope", () => {
    const ps = read("scripts/scope-mailboxes.ps1");
    expect(ps).toMatch(/^\$ErrorActionPreference = "Stop"$/m);
    // Failures are only tolerated for the look-ups that decide what to create.
    for (const m of ps.matchAll(/^.*SilentlyContinue.*$/gm)) expect(m[0]).toMatch(/^\s*\$\w+ = @?\(?Get-/);
    const assignments = [...ps.matchAll(/New-ManagementRoleAssignment[^\n]*/g)].map((m) => m[0]);
    expect(assignments.length).toBeGreaterThan(0);
    for (const a of assignments) expect(a).toMatch(/-CustomResourceScope \$scope\.Name/);
    expect(ps).toMatch(/throw "no management scope/);
  });

  it("keeps local settings, secrets, keys, tests and .git out of the package (.funcignore)", () => {
    const ignore = read(".funcignore").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
    for (const p of ["local.settings.json", "secrets.local.json", "*.pem", "*.key", ".git", "test", ".local", ".azure", "/src", "/bench"]) expect(ignore, p).toContain(p);
  });
});
