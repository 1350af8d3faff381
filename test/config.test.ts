import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { buildDeps } from "../src/app/deps.js";
import { memoryLogger } from "../src/log.js";

const azure = {
  UMC_ENVIRONMENT: "azure", UMC_TABLE_SERVICE_URI: "https://st.table.core.windows.net/", UMC_QUEUE_SERVICE_URI: "https://st.queue.core.windows.net/",
  UMC_CLIENT_ID: "app", UMC_MANAGED_IDENTITY_CLIENT_ID: "mi", UMC_PUBLIC_BASE_URL: "https://func.example.test",
  UMC_WEBHOOK_SECRET: "w".repeat(40), UMC_STORE_NOTIFY_SECRET: "s".repeat(40), UMC_ADMIN_TENANT_ID: "0c0ffee0-0000-4000-8000-000000000001", UMC_KEY_VAULT_URI: "https://kv.vault.azure.net/",
};

describe("configuration", () => {
  it("reports every problem at once", () => {
    let err: { code?: string; problems?: string[] } = {};
    try { loadConfig({ UMC_ENVIRONMENT: "azure", UMC_CLIENT_SECRET: "x", UMC_LOG_LEVEL: "loud", UMC_FAST_READ_INTERVAL_SECONDS: "0" }); } catch (e) { err = e as typeof err; }
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.problems!.join("\n")).toMatch(/UMC_LOG_LEVEL/);
    expect(err.problems!.join("\n")).toMatch(/UMC_FAST_READ_INTERVAL_SECONDS/);
    expect(err.problems!.join("\n")).toMatch(/UMC_STORAGE_CONNECTION_STRING/);
    expect(err.problems!.join("\n")).toMatch(/UMC_CLIENT_SECRET: client secrets are not allowed in Azure/);
    expect(err.problems!.join("\n")).toMatch(/UMC_WEBHOOK_SECRET: required in Azure/);
  });
  it("keeps the shared admin token out of Azure, where the admin API takes Entra tokens", () => {
    expect(() => loadConfig({ ...azure, UMC_ADMIN_TOKEN: "t".repeat(40) })).toThrow(/UMC_ADMIN_TOKEN: the local admin token is for the dev host/);
    const { UMC_ADMIN_TENANT_ID: _t, ...noTenant } = azure;
    expect(() => loadConfig(noTenant)).toThrow(/UMC_ADMIN_TENANT_ID: required in Azure/);
    expect(() => loadConfig({ ...azure, UMC_ADMIN_TENANT_ID: "contoso" })).toThrow(/UMC_ADMIN_TENANT_ID: a tenant id/);
    expect(loadConfig(azure).admin).toEqual({ tenantId: "0c0ffee0-0000-4000-8000-000000000001", role: "Umconnect.Admin" });
  });
  it("ignores empty settings and other variables", () => {
    expect(loadConfig({ UMC_ENVIRONMENT: "test", UMC_STORAGE_CONNECTION_STRING: "UseDevelopmentStorage=true", UMC_LOG_LEVEL: "", PATH: "/bin" }).logLevel).toBe("info");
  });
  it("builds the Azure wiring (managed identity for storage and the app) without keys", () => {
    const deps = buildDeps(loadConfig(azure), memoryLogger());
    expect(deps.syncQueue.url).toBe("https://st.queue.core.windows.net/sync-mailbox");
    expect(() => deps.graph("tenant")).not.toThrow();
  });
});
