import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadDirectory, fileSecrets, type SecretSource } from "../../src/app/endpoints.js";

const ep = (id: string, auth: Record<string, unknown>) => ({ id, host: "vm.example.test", port: 993, tls: "implicit", auth });
const secrets = (map: Record<string, string>): SecretSource => ({ get: async (n) => { if (!(n in map)) throw new Error(`no ${n}`); return map[n]!; }, find: async (n) => map[n], set: async (n, v) => { map[n] = v; } });

describe("directory", () => {
  it("resolves named secrets, and lists endpoints without them", async () => {
    const d = await loadDirectory({ stored: { endpoints: [ep("v1", { mode: "master-separator", masterUser: "mu", passwordSecret: "v1--master" })], profiles: [{ id: "p", displayName: "P" }] }, secrets: secrets({ "v1--master": "s3cret" }) });
    expect(d.endpoint("v1").auth).toEqual({ mode: "master-separator", masterUser: "mu", password: "s3cret" });
    expect(JSON.stringify(d.listEndpoints())).not.toContain("s3cret");
    expect(d.listEndpoints()[0]).toMatchObject({ id: "v1", source: "stored", passwordSecret: "v1--master" });
    expect(d.profile("p").displayName).toBe("P");
    expect(d.profile("default").id).toBe("default");
  });

  it("refuses an id defined twice, an endpoint with both or neither password forms, and a named secret without a source", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "umc-dir-"));
    const file = path.join(dir, "secrets.json");
    fs.writeFileSync(file, JSON.stringify({ endpoints: [ep("v1", { mode: "user-password", password: "x" })], secrets: { a: "b" } }));
    await expect(loadDirectory({ secretsFile: file, stored: { endpoints: [ep("v1", { mode: "user-password", passwordSecret: "a" })], profiles: [] }, secrets: fileSecrets(file) })).rejects.toThrow(/defined twice/);
    await expect(loadDirectory({ stored: { endpoints: [ep("v2", { mode: "user-password", password: "x", passwordSecret: "a" })], profiles: [] } })).rejects.toThrow(/exactly one of password/);
    await expect(loadDirectory({ stored: { endpoints: [ep("v2", { mode: "user-password" })], profiles: [] } })).rejects.toThrow(/exactly one of password/);
    await expect(loadDirectory({ stored: { endpoints: [ep("v3", { mode: "user-password", passwordSecret: "v3--password" })], profiles: [] } })).rejects.toThrow(/no secret source/);
    await expect(loadDirectory({ stored: { endpoints: [], profiles: [{ id: "p", displayName: "1" }, { id: "p", displayName: "2" }] } })).rejects.toThrow(/profile p is defined twice/);
    fs.writeFileSync(file, "{ not json, password: hunter2");
    await expect(loadDirectory({ secretsFile: file, stored: { endpoints: [], profiles: [] } })).rejects.toThrow(/missing or invalid/);
    await loadDirectory({ secretsFile: file, stored: { endpoints: [], profiles: [] } }).catch((e: Error) => expect(e.message).not.toContain("hunter2"));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("lets an endpoint name only secrets under its own prefix, refusing it alone (its secret never read)", async () => {
    const read: string[] = [];
    const src: SecretSource = { ...secrets({ "v1--master": "one", "v1-2--master": "two", "umc-webhook-secret": "app" }), get: async (n) => { read.push(n); return "x"; } };
    const d = await loadDirectory({ stored: { endpoints: [
      ep("v1", { mode: "user-password", passwordSecret: "v1--master" }),
      ep("v1-2", { mode: "user-password", passwordSecret: "v1--master" }),
      ep("v9", { mode: "user-password", passwordSecret: "umc-webhook-secret" }),
      ep("v8", { mode: "user-password", passwordSecret: "v8--signing" }),
      ep("odd--id", { mode: "user-password", passwordSecret: "odd--id--x" }),
    ], profiles: [] }, secrets: src });
    expect(read).toEqual(["v1--master"]);
    expect(d.endpoint("v1").auth).toMatchObject({ password: "x" });
    for (const id of ["v1-2", "v9", "v8", "odd--id"]) expect(() => d.endpoint(id), id).toThrow(/refused as configured/);
    expect(d.listEndpoints().find((e) => e.id === "v8")!.refused).toMatch(/signing secret, not a password/);
    expect(d.listEndpoints().find((e) => e.id === "odd--id")!.refused).toMatch(/cannot name Key Vault secrets/);
  });
});
