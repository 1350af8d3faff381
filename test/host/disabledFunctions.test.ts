/**
 * The platform's AzureWebJobs.<name>.Disabled setting in the dev host: the trigger is ignored,
 * and the master-key endpoint POST /admin/functions/<name> still runs the function, as in Azure
 * (https://learn.microsoft.com/en-us/azure/azure-functions/disable-function,
 * https://learn.microsoft.com/en-us/azure/azure-functions/functions-manually-run-non-http).
 * The test world's SAFETY_NET_TIMERS option rests on this.
 * Break seen red: the dev host ignoring the disabled list (its set left empty) -> "ignores a
 * disabled timer's schedule ..." (the disabled timer ticked as often as its twin).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FunctionDefinition } from "../../functions/definition.js";
import { startDevHost, type DevHost } from "../../src/host/devHost.js";
import { disabledFunctions, loadConfig } from "../../src/config.js";
import { memoryLogger } from "../../src/log.js";

const KEY = "master-key-for-this-test-0123456789";
const ticks = { enabled: 0, disabled: 0 };
const every = (name: keyof typeof ticks): FunctionDefinition => ({ name, trigger: { kind: "timer", schedule: "* * * * * *" }, handler: async () => { ticks[name]++; } });
let host: DevHost;

beforeAll(async () => {
  const env = { UMC_ENVIRONMENT: "test", UMC_STORAGE_CONNECTION_STRING: "UseDevelopmentStorage=true", "AzureWebJobs.disabled.Disabled": "true" };
  host = await startDevHost({ definitions: [every("enabled"), every("disabled")], storageConnectionString: env.UMC_STORAGE_CONNECTION_STRING, logger: memoryLogger(),
    disabledFunctions: loadConfig(env).host.disabledFunctions, masterKey: KEY });
});
afterAll(async () => { await host?.stop(); });

const run = (name: string, key?: string) => fetch(`${host.url}/admin/functions/${name}`, { method: "POST", headers: { "content-type": "application/json", ...(key ? { "x-functions-key": key } : {}) }, body: '{"input":""}' });

describe("disabled functions", () => {
  it("reads the setting in both spellings, true only", () => {
    expect(disabledFunctions({ "AzureWebJobs.pollStores.Disabled": "true", AzureWebJobs__reconcile__Disabled: "1", "AzureWebJobs.alerts.Disabled": "false", AzureWebJobs__x__Enabled: "true" })).toEqual(["pollStores", "reconcile"]);
    expect(loadConfig({ UMC_ENVIRONMENT: "test", UMC_STORAGE_CONNECTION_STRING: "UseDevelopmentStorage=true" }).host.disabledFunctions).toEqual([]);
  });

  it("ignores a disabled timer's schedule while its enabled twin fires", async () => {
    // The positive first: the twin on the same schedule fired (so the timers were running).
    await expect.poll(() => ticks.enabled, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
    expect(ticks.disabled).toBe(0);
  });

  it("runs a disabled function on demand with the master key, 202; any other key or name 404", async () => {
    const before = ticks.disabled;
    expect((await run("disabled", KEY)).status).toBe(202);
    await expect.poll(() => ticks.disabled, { timeout: 5000 }).toBe(before + 1);
    expect((await run("disabled", "x".repeat(KEY.length))).status).toBe(404);
    expect((await run("disabled")).status).toBe(404);
    expect((await run("nothing", KEY)).status).toBe(404);
    expect(ticks.disabled).toBe(before + 1);
  });
});
