import { describe, expect, it } from "vitest";
import { loadDirectory } from "../../src/app/endpoints.js";
import { parseProfile } from "../../src/admin/profiles.js";
import { mirroredFolders, mirrorsFolder } from "../../src/sync/mirrorFolders.js";

const T1 = "0c0ffee0-0000-4000-8000-000000000001";
const T2 = "0c0ffee0-0000-4000-8000-000000000002";
const ep = (id: string, extra: Record<string, unknown> = {}) => ({ id, host: `${id}.example.test`, port: 993, tls: "implicit", tenantId: T1, auth: { mode: "user-password", password: "x" }, ...extra });
const dir = (endpoints: unknown[]) => loadDirectory({ stored: { endpoints, profiles: [] } });

describe("mirror configuration", () => {
  it("an endpoint names its backup, another endpoint with its own auth", async () => {
    const d = await dir([ep("prod", { backup: { endpointId: "dr" } }), ep("dr", { auth: { mode: "sasl-authzid", masterUser: "su", password: "y" } })]);
    expect(d.backupOf("prod")).toBe("dr");
    expect(d.backupOf("dr")).toBeUndefined();
    expect(d.endpoint("dr").auth.mode).toBe("sasl-authzid");
  });

  it("refuses a backup that is unknown, the endpoint itself, a loop, or another tenant's store, with a clear message", async () => {
    await expect(dir([ep("prod", { backup: { endpointId: "nope" } })])).rejects.toThrow(/endpoint prod: backup.endpointId nope is not a configured endpoint/);
    await expect(dir([ep("prod", { backup: { endpointId: "prod" } })])).rejects.toThrow(/is the endpoint itself/);
    await expect(dir([ep("a", { backup: { endpointId: "b" } }), ep("b", { backup: { endpointId: "a" } })])).rejects.toThrow(/a loop/);
    await expect(dir([ep("prod", { backup: { endpointId: "dr" } }), ep("dr", { tenantId: T2 })])).rejects.toThrow(/another tenant/);
    await expect(dir([ep("prod", { backup: { endpointId: "bad id!" } })])).rejects.toThrow(/backup.endpointId/);
  });

  it("profiles mirror nothing by default; include/exclude pick folders (exclude wins, INBOX in any case)", () => {
    expect(parseProfile({ id: "p", displayName: "P" }).mirror).toEqual({ enabled: false, include: ["INBOX"], exclude: [] });
    const rule = parseProfile({ id: "p", displayName: "P", mirror: { enabled: true, include: ["inbox", "Greetings*", "RecordedName"], exclude: ["Greetings-Old"] } }).mirror;
    expect(mirroredFolders(rule, ["Trash", "Greetings-Old", "Greetings", "INBOX", "RecordedName", "Greetings.Busy"])).toEqual(["INBOX", "Greetings", "Greetings.Busy", "RecordedName"]);
    expect(mirrorsFolder(rule, "Saved")).toBe(false);
  });
});
