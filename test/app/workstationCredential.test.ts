/**
 * The operator CLI from a workstation: storage and Key Vault by service URI with the operator's
 * own Entra sign-in (DefaultAzureCredential: az login, azd, environment), no managed identity,
 * no keys. The deployment grants the deploying principal the data roles (infra/app/rbac.bicep).
 */
import { describe, expect, it } from "vitest";
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { loadConfig } from "../../src/config.js";
import { buildDeps, workstationCredential } from "../../src/app/deps.js";
import { createLogger } from "../../src/log.js";
import { main } from "../../src/cli/main.js";

// Nothing listens on port 9: the requests fail after the credential was asked for a token.
const byUri = loadConfig({ UMC_ENVIRONMENT: "local", UMC_TABLE_SERVICE_URI: "https://127.0.0.1:9/devstoreaccount1", UMC_QUEUE_SERVICE_URI: "https://127.0.0.1:9/devstoreaccount1", UMC_LOG_LEVEL: "error" });

describe("operator CLI credential", () => {
  it("reaches storage by URI with the given credential instead of a managed identity", async () => {
    expect(() => buildDeps(byUri, createLogger({ level: "error" }))).toThrow(/UMC_MANAGED_IDENTITY_CLIENT_ID/);
    const scopes: string[] = [];
    const credential: TokenCredential = { getToken: async (s): Promise<AccessToken> => { scopes.push(...[s].flat()); return { token: "operator-token", expiresOnTimestamp: Date.now() + 3_600_000 }; } };
    const deps = buildDeps(byUri, createLogger({ level: "error" }), { credential });
    await expect(deps.state.listTenants()).rejects.toThrow();
    await expect(deps.syncQueue.getProperties()).rejects.toThrow();
    expect(scopes).toContain("https://storage.azure.com/.default");
  }, 30_000);

  it("is DefaultAzureCredential: without any sign-in it says so", async () => {
    const saved = { ...process.env };
    // No az, azd or environment credential on this machine's PATH for the test.
    process.env.PATH = "/nonexistent";
    for (const k of Object.keys(process.env)) if (k.startsWith("AZURE_")) delete process.env[k];
    try {
      await expect(workstationCredential().getToken("https://storage.azure.com/.default")).rejects.toThrow(/DefaultAzureCredential|az login|Azure CLI/i);
    } finally {
      process.env = saved;
    }
  }, 60_000);

  it("is what the CLI uses when storage is given by URI", async () => {
    const saved = { ...process.env };
    process.env.PATH = "/nonexistent";
    for (const k of Object.keys(process.env)) if (k.startsWith("AZURE_") || k.startsWith("UMC_")) delete process.env[k];
    Object.assign(process.env, { UMC_ENVIRONMENT: "local", UMC_TABLE_SERVICE_URI: "https://127.0.0.1:9/devstoreaccount1", UMC_QUEUE_SERVICE_URI: "https://127.0.0.1:9/devstoreaccount1" });
    const errors: string[] = [];
    try {
      const outcome = await main(["tenants"], () => {}, (s) => errors.push(s)).then((code) => ({ code, text: errors.join("\n") }), (e: unknown) => ({ code: -1, text: String(e) }));
      expect(outcome.code).not.toBe(0);
      // Not "needs UMC_MANAGED_IDENTITY_CLIENT_ID": it tried the operator's sign-in.
      expect(outcome.text).not.toMatch(/UMC_MANAGED_IDENTITY_CLIENT_ID/);
      expect(outcome.text).toMatch(/DefaultAzureCredential|az login|Azure CLI/i);
    } finally {
      process.env = saved;
    }
  }, 90_000);
});
