/**
 * `umconnect doctor` as a process against the local world: every check passes, then each one
 * is made to fail once on purpose (a setting missing, storage refusing the key, the queue
 * missing, a secret missing, the app's credential wrong, a tenant without all permissions, a
 * voice store not answering, the notification URL not reachable), and the doctor names it,
 * says what to do, and exits 1.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APP, startWorld, TENANT, type World } from "./world.js";
import type { DoctorCheck } from "../../src/admin/doctor.js";

let w: World;
const cli = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "umc-doctor-"));
const TENANT_B = "0c0ffee0-0000-4000-8000-0000000000b2";
const ORDER = ["settings", "storage", "queue", "secrets", "Graph token", "permissions", "voice stores", "notification URL", "notification URL"];

function doctor(env: Record<string, string | undefined>, json = true): Promise<{ code: number; stdout: string; checks: DoctorCheck[] }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", cli, "doctor", ...(json ? ["--json"] : [])], { env: { ...process.env, ...w.env, ...env } as NodeJS.ProcessEnv, encoding: "utf8" }, (e, stdout) => {
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, stdout, checks: json ? (JSON.parse(stdout) as { checks: DoctorCheck[] }).checks : [] });
    });
  });
}
/** A copy of the world's secrets file, changed. */
function secretsFile(change: (f: { endpoints: Array<Record<string, unknown>>; secrets: Record<string, string> }) => void): string {
  const f = JSON.parse(fs.readFileSync(w.env.UMC_SECRETS_FILE!, "utf8"));
  change(f);
  const p = path.join(dir, `secrets-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(p, JSON.stringify(f), { mode: 0o600 });
  return p;
}
/** The failing check, and every check before it passed. */
function failsAt(checks: DoctorCheck[], name: string): DoctorCheck {
  const i = checks.findIndex((c) => c.state === "fail");
  expect(checks[i]?.check, JSON.stringify(checks, null, 1)).toBe(name);
  expect(checks.slice(0, i).every((c) => c.state === "pass"), JSON.stringify(checks.slice(0, i))).toBe(true);
  expect(checks[i]!.fix).toBeTruthy();
  return checks[i]!;
}

beforeAll(async () => {
  w = await startWorld({ users: ["6201"], quiet: true, timers: false });
  await w.link("6201", "dr@contoso.test");
}, 60_000);
afterAll(async () => { await w?.stop(); fs.rmSync(dir, { recursive: true, force: true }); });

describe("umconnect doctor", () => {
  it("passes every check, in order, against the healthy world", async () => {
    const r = await doctor({});
    expect(r.code).toBe(0);
    expect(r.checks.map((c) => c.check)).toEqual(ORDER);
    expect(r.checks.map((c) => c.state)).toEqual(ORDER.map(() => "pass"));
    expect(r.checks.find((c) => c.check === "voice stores")!.detail).toBe("voice-1: login for 6201 ok; CONDSTORE, QRESYNC, IDLE, NOTIFY, METADATA offered");
    expect(r.checks.find((c) => c.check === "permissions")!.detail).toMatch(/Mail\.ReadWrite, Calendars\.Read, Contacts\.ReadWrite, User\.Read\.All granted/);
    const human = await doctor({}, false);
    expect(human.stdout).toMatch(/^ 1\. PASS  settings: /);
    expect(human.stdout.trimEnd().split("\n").at(-1)).toBe("all checks passed");
  }, 60_000);

  it("1. settings: a missing setting fails the first check and skips the rest", async () => {
    const r = await doctor({ UMC_STORAGE_CONNECTION_STRING: "" });
    expect(r.code).toBe(1);
    expect(failsAt(r.checks, "settings").detail).toMatch(/UMC_STORAGE_CONNECTION_STRING/);
    expect(r.checks.slice(1).every((c) => c.state === "skip")).toBe(true);
  }, 60_000);

  it("2. storage: refused with the identity in use (a wrong account key)", async () => {
    const wrongKey = w.env.UMC_STORAGE_CONNECTION_STRING!.replace(/AccountKey=[^;]+/, `AccountKey=${Buffer.alloc(64, 7).toString("base64")}`);
    const r = await doctor({ UMC_STORAGE_CONNECTION_STRING: wrongKey });
    expect(r.code).toBe(1);
    expect(failsAt(r.checks, "storage").detail).toMatch(/not reachable as the connection string's key/);
  }, 60_000);

  it("3. queue: the sync queue does not exist", async () => {
    const r = await doctor({ UMC_SYNC_QUEUE: "no-such-queue" });
    expect(r.code).toBe(1);
    const c = failsAt(r.checks, "queue");
    expect(c.detail).toBe("queue no-such-queue does not exist");
    expect(c.fix).toMatch(/az storage queue create --name no-such-queue/);
  }, 60_000);

  it("4. secrets: a store's signing secret is missing", async () => {
    const r = await doctor({ UMC_SECRETS_FILE: secretsFile((f) => { delete f.secrets["voice-1--signing"]; }) });
    expect(r.code).toBe(1);
    const c = failsAt(r.checks, "secrets");
    expect(c.detail).toMatch(/no signing secret for voice-1/);
    expect(c.fix).toBe("umconnect endpoint rotate-secret voice-1");
  }, 60_000);

  it("5. Graph token: Entra ID refuses the app's credential for the tenant", async () => {
    const r = await doctor({ UMC_CLIENT_SECRET: "not-the-app-secret" });
    expect(r.code).toBe(1);
    expect(failsAt(r.checks, "Graph token").detail).toMatch(new RegExp(`tenant ${TENANT}: no token`));
    expect(r.checks.find((c) => c.check === "permissions")!.state).toBe("skip");
  }, 60_000);

  it("6. permissions: a connected tenant granted less than umconnect needs", async () => {
    w.sim.addTenant({ tenantId: TENANT_B, apps: [{ clientId: APP, clientSecret: "app-secret-for-tests", roles: ["Mail.ReadWrite"] }] });
    await w.deps.state.upsertTenant({ tenantId: TENANT_B, grantedRoles: ["Mail.ReadWrite"], status: "active" });
    try {
      const r = await doctor({});
      expect(r.code).toBe(1);
      const c = failsAt(r.checks.filter((x) => !(x.check === "permissions" && x.detail.startsWith(TENANT))), "permissions");
      expect(c.detail).toBe(`tenant ${TENANT_B}: granted Mail.ReadWrite; missing Calendars.Read, Contacts.ReadWrite, User.Read.All`);
      expect(c.fix).toContain(`/api/admin/consent/start?tenant=${TENANT_B}`);
    } finally {
      await w.deps.state.upsertTenant({ tenantId: TENANT_B, grantedRoles: ["Mail.ReadWrite"], status: "revoked" });
    }
  }, 60_000);

  it("7. voice stores: a store that does not answer", async () => {
    const closed = secretsFile((f) => { f.endpoints[0]!.port = 9; });
    const r = await doctor({ UMC_SECRETS_FILE: closed });
    expect(r.code).toBe(1);
    expect(failsAt(r.checks, "voice stores").detail).toMatch(/^voice-1 \(127\.0\.0\.1:9\): login for 6201 failed: IMAP_UNAVAILABLE/);
  }, 60_000);

  it("8. notification URL: Graph's validation round trip cannot reach the app", async () => {
    const r = await doctor({ UMC_PUBLIC_BASE_URL: "https://127.0.0.1:9" });
    expect(r.code).toBe(1);
    const c = failsAt(r.checks, "notification URL");
    expect(c.detail).toMatch(/^https:\/\/127\.0\.0\.1:9\/api\/graph\/notifications: not reachable over https/);
  }, 60_000);
});
