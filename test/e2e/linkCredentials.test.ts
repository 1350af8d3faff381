/**
 * A store without a super user (Cisco Unity Connection style): Dovecot with per-user passwords
 * and no master user. Each link gets its own password through the CLI (prompt or CSV import),
 * kept in the secrets file (Key Vault's stand-in), never in a table, a log or the output; a
 * password the store stops accepting stops that link alone, and `umconnect credentials rotate`
 * brings it back.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, ENDPOINT, type World } from "./world.js";
import { enqueueSync } from "../../src/app/syncQueue.js";
import { storeAccessState, linkSecretName } from "../../src/app/credentials.js";
import { statusReport } from "../../src/admin/status.js";
import { main } from "../../src/cli/main.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";

let w: World;
let savedEnv: NodeJS.ProcessEnv;
const users: Record<string, string> = {};
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "umc-creds-"));

async function umconnect(args: string[], password?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, (s) => out.push(s), (s) => err.push(s), password === undefined ? undefined : async () => password);
  return { code, stdout: out.join("\n"), stderr: err.join("\n") };
}
/** The store's side: a user's password changes (Dovecot re-reads its passwd-file). */
function setStorePassword(user: string, pass: string): void {
  const file = path.join(w.dc.dir, "users");
  fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace(new RegExp(`^${user}:\\{PLAIN\\}[^:]*:`, "m"), `${user}:{PLAIN}${pass}:`));
}
const run = (u: string) => enqueueSync(w.deps.syncQueue, { linkId: `L-${u}`, reason: "poll", at: Date.now() });
const inbox = (u: string) => w.sim.outlook(users[u]!).messages("inbox").length;

beforeAll(async () => {
  w = await startWorld({ users: ["7201", "7202"], timers: false, noMasterUser: true, endpoint: { auth: { mode: "user-password", passwordPerLink: true }, authRetrySeconds: 3600 } });
  savedEnv = { ...process.env };
  Object.assign(process.env, w.env);
  for (const u of ["7201", "7202"]) users[u] = (await w.link(u, `own${u}@contoso.test`)).userId;
}, 90_000);
afterAll(async () => { process.env = savedEnv; await w?.stop(); fs.rmSync(dir, { recursive: true, force: true }); });

describe("per-link credentials", () => {
  it("a link without its own password says what to do", async () => {
    await expect.poll(async () => (await w.deps.state.getLink("L-7201"))?.lastError?.message, { timeout: 20_000 }).toMatch(/umconnect credentials set L-7201 --password-prompt/);
  });

  it("set by prompt and by CSV import, used for login, never stored in tables, logs or output", async () => {
    const set = await umconnect(["credentials", "set", "L-7201", "--password-prompt"], "pw-7201");
    expect(set).toMatchObject({ code: 0 });
    expect(set.stdout).toContain(linkSecretName(ENDPOINT, "L-7201"));
    // Refused without --password-prompt: never from the command line.
    expect((await umconnect(["credentials", "set", "L-7201", "pw-7201"])).code).toBe(2);

    const csv = path.join(dir, "pw.csv");
    fs.writeFileSync(csv, "voiceMailbox,endpointId,password\r\n7202,voice-1,pw-7202\r\n", { mode: 0o600 });
    const bad = path.join(dir, "bad.csv");
    fs.writeFileSync(bad, "voiceMailbox,endpointId,password\n9999,voice-1,secret-never-echoed\n");
    const refused = await umconnect(["credentials", "import", bad]);
    expect(refused.code).toBe(2); // the file is refused: a usage error, nothing written
    expect(refused.stderr).toMatch(/line 2: no link for voice mailbox 9999/);
    expect(refused.stderr).not.toContain("secret-never-echoed");
    const imported = await umconnect(["credentials", "import", csv, "--json"]);
    expect(imported.code).toBe(0);
    expect(JSON.parse(imported.stdout)).toEqual([expect.objectContaining({ linkId: "L-7202", secretName: linkSecretName(ENDPOINT, "L-7202") })]);

    await w.dc.lda("7201", avayaVoiceMessage({ id: "own-1" }));
    await w.dc.lda("7202", avayaVoiceMessage({ id: "own-2" }));
    await run("7201"); await run("7202");
    await expect.poll(() => inbox("7201"), { timeout: 20_000 }).toBe(1);
    await expect.poll(() => inbox("7202"), { timeout: 20_000 }).toBe(1);

    // Where the passwords are: the secrets file only.
    const secrets = JSON.parse(fs.readFileSync(w.env.UMC_SECRETS_FILE!, "utf8")) as { secrets: Record<string, string> };
    expect(secrets.secrets[linkSecretName(ENDPOINT, "L-7201")]).toBe("pw-7201");
    const rows = JSON.stringify([await storeAccessState(w.deps).getLinkCredential("L-7201"), await w.deps.state.listLinks({}), await storeAccessState(w.deps).listBlocks()]);
    expect(rows).toContain(linkSecretName(ENDPOINT, "L-7201"));
    expect(rows).not.toMatch(/pw-720[12]/);
    expect(JSON.stringify((w.log as { lines?: unknown[] }).lines ?? [])).not.toMatch(/pw-720[12]/);
  }, 60_000);

  it("a rejected link password stops that link only, with one endpoint alert; rotate brings it back", async () => {
    setStorePassword("7202", "pw-7202-new");
    await w.dc.lda("7202", avayaVoiceMessage({ id: "own-3" }));
    await w.dc.lda("7201", avayaVoiceMessage({ id: "own-4" }));
    await run("7202"); await run("7201");
    await expect.poll(async () => (await storeAccessState(w.deps).getBlock("link:L-7202"))?.state, { timeout: 20_000 }).toBe("blocked");
    await expect.poll(() => inbox("7201"), { timeout: 20_000 }).toBe(2); // the other link goes on
    expect(await storeAccessState(w.deps).getBlock(`endpoint:${ENDPOINT}`)).toBeUndefined();
    const alerts = (await statusReport(w.deps)).alerts.filter((a) => a.code === "IMAP_AUTH_FAILED");
    expect(alerts).toEqual([expect.objectContaining({ endpointId: ENDPOINT })]);
    expect(alerts[0]!.text).toMatch(/1 link password\(s\) rejected.*L-7202/);

    const wrong = await umconnect(["credentials", "rotate", "L-7202", "--password-prompt"], "still-wrong");
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toMatch(/test login FAILED: IMAP_AUTH_FAILED/);
    const rotated = await umconnect(["credentials", "rotate", "L-7202", "--password-prompt"], "pw-7202-new");
    expect(rotated).toMatchObject({ code: 0 });
    expect(rotated.stdout).toMatch(/test login ok/);
    expect(rotated.stdout + rotated.stderr).not.toContain("pw-7202-new");
    expect(await storeAccessState(w.deps).getBlock("link:L-7202")).toBeUndefined();
    await run("7202");
    await expect.poll(() => inbox("7202"), { timeout: 20_000 }).toBe(2);
  }, 60_000);
});
