/**
 * The `umconnect` command line as an administrator runs it: a separate process with the
 * deployment's UMC_* settings, against the running world. Exit codes, human and JSON output,
 * all-or-nothing imports with line numbers, per-user overrides that take effect at once.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, TENANT, type World } from "./world.js";
import { main } from "../../src/cli/main.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";

let w: World;
const cli = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "umc-cli-"));

type Result = { code: number; stdout: string; stderr: string };

/** The real command as a process (npm's bin runs exactly this file). */
function umconnectProcess(...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", cli, ...args], { env: { ...process.env, ...w.env }, encoding: "utf8" }, (e, stdout, stderr) => {
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The same entry point in this process (a process costs seconds of CPU to start with tsx). */
async function umconnect(...args: string[]): Promise<Result> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, (s) => out.push(s), (s) => err.push(s));
  return { code, stdout: out.join("\n") + (out.length ? "\n" : ""), stderr: err.join("\n") };
}

const card = (fn: string) => `From: Avaya <mm@voice.test>\r\nSubject: card\r\nContent-Type: text/vcard; charset=utf-8\r\n\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nUID:${fn.replace(/ /g, "-")}\r\nFN:${fn}\r\nN:${fn.split(" ").reverse().join(";")};;;\r\nEND:VCARD\r\n`;

beforeAll(async () => {
  w = await startWorld({ users: ["4980", "4981", "4982"], quiet: true, profiles: [{ id: "kontakte", displayName: "Voice and contacts", contacts: { enabled: true, folder: "Kontakte" } }] });
  // main() reads the UMC_* settings from the environment, as the installed command does.
  Object.assign(process.env, w.env);
  for (const u of ["ann", "bob"]) w.sim.addUser(TENANT, { userPrincipalName: `${u}@contoso.test`, proxyAddresses: [`SMTP:${u}@contoso.test`] });
}, 60_000);
afterAll(async () => { await w?.stop(); fs.rmSync(dir, { recursive: true, force: true }); });

describe("umconnect", () => {
  it("runs as a process: human and JSON output, exit codes 0, 1 and 2", async () => {
    const t = await umconnectProcess("tenants", "--json");
    expect(t.code).toBe(0);
    expect(JSON.parse(t.stdout)[0]).toMatchObject({ tenantId: TENANT });
    expect((await umconnectProcess("pause", "L-unknown")).code).toBe(1);
    const usage = await umconnectProcess("frobnicate");
    expect(usage.code).toBe(2);
    expect(usage.stderr).toBe("umconnect: unknown command 'frobnicate'; see `umconnect --help` for the commands\n");
  });

  it("lists tenants, endpoints and profiles, without secrets", async () => {
    const t = await umconnect("tenants", "--json");
    expect(t.code).toBe(0);
    expect(JSON.parse(t.stdout)[0]).toMatchObject({ tenantId: TENANT, status: "active" });
    const e = await umconnect("endpoints");
    expect(e.stdout).toMatch(/voice-1 .*auth master-separator/);
    expect(e.stdout + (await umconnect("endpoints", "--json")).stdout).not.toContain(w.dc.master.pass);
    expect((await umconnect("profiles")).stdout).toMatch(/kontakte\s+Voice and contacts: voice\+fax -> inbox, contacts/);
  });

  it("refuses a CSV with bad rows, naming each line, and imports nothing; then imports a good one", async () => {
    const bad = path.join(dir, "bad.csv");
    fs.writeFileSync(bad, "voiceMailbox,endpointId,smtp,profileId\n4980,voice-1,ann@contoso.test,default\n4981,voice-9,bob@contoso.test,default\n4982,voice-1,nobody@contoso.test,nope\n");
    const r = await umconnect("import", bad, "--tenant", TENANT);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/line 3: .*voice-9/);
    expect(r.stderr).toMatch(/line 4: .*nope/);
    expect(r.stderr).toMatch(/line 4: .*nobody@contoso\.test/);
    expect(JSON.parse((await umconnect("links", "--json")).stdout)).toEqual([]);
    const good = path.join(dir, "good.csv");
    fs.writeFileSync(good, "voiceMailbox,endpointId,smtp,profileId\n4980,voice-1,ann@contoso.test,default\n4981,voice-1,bob@contoso.test,default\n");
    const ok = await umconnect("import", good, "--tenant", TENANT, "--json");
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toHaveLength(2);
    expect((await umconnect("export", "--tenant", TENANT)).stdout).toMatch(/4980,voice-1,ann@contoso\.test,default/);
    // One voice mailbox, one Exchange mailbox: a second link to either side is refused.
    const again = await umconnect("import", good, "--tenant", TENANT);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already linked/);
  });

  it("pauses and resumes a link, with usage errors as exit code 2", async () => {
    const [ann] = (JSON.parse((await umconnect("links", "--json")).stdout) as Array<{ linkId: string; voiceMailbox: string }>).filter((l) => l.voiceMailbox === "4980");
    expect((await umconnect("pause", ann!.linkId)).stdout).toMatch(/is paused/);
    expect((await umconnect("resume", ann!.linkId)).stdout).toMatch(/is enabled/);
    expect((await umconnect("pause")).code).toBe(2);
    expect((await umconnect("frobnicate")).code).toBe(2);
    expect((await umconnect("pause", "L-unknown")).code).toBe(1);
  });

  it("sets one user's override (contacts on, for that user only), shows it, refuses bad ones, clears it", async () => {
    const links = JSON.parse((await umconnect("links", "--json")).stdout) as Array<{ linkId: string; voiceMailbox: string; userId: string }>;
    const ann = links.find((l) => l.voiceMailbox === "4980")!;
    const bob = links.find((l) => l.voiceMailbox === "4981")!;
    const bad = await umconnect("override", ann.linkId, JSON.stringify({ contacts: { enabled: "yes", foldr: "x" }, id: "other", colour: "red" }));
    expect(bad.code).toBe(1);
    for (const p of [/contacts\.enabled/, /contacts\.foldr: unknown setting/, /id: a profile's identity/, /colour: unknown setting/]) expect(bad.stderr).toMatch(p);
    const set = await umconnect("override", ann.linkId, JSON.stringify({ contacts: { enabled: true } }));
    expect(set.code).toBe(0);
    expect((await umconnect("override", ann.linkId)).stdout).toContain('{"contacts":{"enabled":true}}');
    expect((await umconnect("links")).stdout).toMatch(new RegExp(`${ann.linkId} .* profile default \\+ override`));
    // It takes effect: Ann's store contacts reach her Outlook; Bob's profile has no contacts.
    for (const [mb] of [["4980"], ["4981"]]) {
      const c = await w.imap(mb!);
      try { await c.mailboxCreate("Contacts").catch(() => undefined); await c.append("Contacts", Buffer.from(card(`Grace Hopper ${mb}`))); } finally { await c.logout(); }
    }
    await expect.poll(() => w.sim.people(ann.userId).list().map((p) => p.props.displayName), { timeout: 15_000 }).toEqual(["Grace Hopper 4980"]);
    // Bob's store told us about his new card too, in a folder his profile does not sync (and not
    // INBOX): it starts no run at all (src/app/webhooks.ts). Once every queued run is handled:
    // no contacts run, no contact in Outlook.
    await w.queueDrained();
    expect((await w.deps.state.getLink(bob.linkId))!.kinds?.contacts).toBeUndefined();
    expect(w.sim.people(bob.userId).list()).toEqual([]);
    const status = await fetch(`${w.host.url}/api/admin/status`, { headers: { authorization: `Bearer ${w.env.UMC_ADMIN_TOKEN}` } }).then((r) => r.json()) as { links: Array<{ linkId: string; overrides?: string[] }> };
    expect(status.links.find((l) => l.linkId === ann.linkId)?.overrides).toEqual(["contacts"]);
    const cleared = await umconnect("override", ann.linkId, "--clear", "--json");
    expect(JSON.parse(cleared.stdout)).toMatchObject({ linkId: ann.linkId, override: null });
  });

  it("keeps a profile's own settings where the override says nothing", async () => {
    const links = JSON.parse((await umconnect("links", "--json")).stdout) as Array<{ linkId: string; voiceMailbox: string }>;
    const bob = links.find((l) => l.voiceMailbox === "4981")!;
    // Set through the CLI, then read back from where the worker reads it (the stored link).
    // Break seen red: the CLI's override command printing success without storing it.
    expect((await umconnect("override", bob.linkId, JSON.stringify({ contacts: { folder: "Adressen" } }))).code).toBe(0);
    const stored = (await w.deps.state.getLink(bob.linkId))!;
    expect(stored.profileOverride).toEqual({ contacts: { folder: "Adressen" } });
    const directory = await w.deps.directory();
    const base = directory.linkProfile({ profileId: stored.profileId });
    // Only the folder changes; contacts stay off and every other setting is the profile's.
    expect(directory.linkProfile(stored)).toEqual({ ...base, contacts: { ...base.contacts, folder: "Adressen" } });
    expect((await umconnect("override", bob.linkId, "--clear")).code).toBe(0);
  });

  it("manages stored endpoints whose password is a named secret, tests them, and refuses what would break", async () => {
    const secretsFile = w.env.UMC_SECRETS_FILE!;
    const withSecret = (value: string) => {
      const f = JSON.parse(fs.readFileSync(secretsFile, "utf8")) as { secrets?: Record<string, string> };
      fs.writeFileSync(secretsFile, JSON.stringify({ ...f, secrets: { ...f.secrets, "voice-2--master": value } }), { mode: 0o600 });
    };
    const file = (name: string, body: unknown) => { const p = path.join(dir, name); fs.writeFileSync(p, JSON.stringify(body)); return p; };
    const ep = { id: "voice-2", host: w.dc.host, port: w.dc.port, tls: "plaintext", maxConnections: 4, tenantId: TENANT, auth: { mode: "master-separator", masterUser: w.dc.master.user, passwordSecret: "voice-2--master" } };
    const inline = await umconnect("endpoint", "set", file("inline.json", { ...ep, auth: { ...ep.auth, passwordSecret: undefined, password: "pw" } }));
    expect(inline.code).toBe(1);
    expect(inline.stderr).toMatch(/stored endpoints name their secret/);
    const missing = await umconnect("endpoint", "set", file("ep.json", ep));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/secret voice-2--master is not in the local secrets file/);
    withSecret(w.dc.master.pass);
    expect((await umconnect("endpoint", "set", file("ep.json", ep))).code).toBe(0);
    const listed = await umconnect("endpoints");
    expect(listed.stdout).toMatch(/voice-2 .*auth master-separator \(secret voice-2--master\).*stored  owner tenant /);
    expect(listed.stdout).not.toContain(w.dc.master.pass);
    expect((await umconnect("endpoint", "test", "voice-2", "--mailbox", "4982")).stdout).toMatch(/voice-2: logged in for 4982/);
    withSecret("an-expired-password");
    const rejected = await umconnect("endpoint", "test", "voice-2", "--mailbox", "4982");
    expect(rejected.code).toBe(1);
    expect(rejected.stderr).toMatch(/IMAP_AUTH_FAILED/);
    withSecret(w.dc.master.pass);

    // A mailbox linked through the stored endpoint syncs at once: the worker's directory, loaded
    // before the endpoint existed, looks again when a link names an endpoint it does not know.
    const carl = w.sim.addUser(TENANT, { userPrincipalName: "carl@contoso.test", proxyAddresses: ["SMTP:carl@contoso.test"] });
    const csv = path.join(dir, "v2.csv");
    fs.writeFileSync(csv, "voiceMailbox,endpointId,smtp,profileId\n4982,voice-2,carl@contoso.test,default\n");
    expect((await umconnect("import", csv, "--tenant", TENANT)).code).toBe(0);
    await w.dc.lda("4982", avayaVoiceMessage({ id: "via-voice-2" }));
    await expect.poll(() => w.sim.outlook(carl.id).messages("inbox").length, { timeout: 15_000 }).toBe(1);
    const carlLink = (await w.deps.state.listLinks({})).find((l) => l.voiceMailbox === "4982")!;
    expect(carlLink.lastError).toBeUndefined();
    const inUse = await umconnect("endpoint", "remove", "voice-2");
    expect(inUse.code).toBe(1);
    expect(inUse.stderr).toMatch(/used by 1 link/);
  });

  it("manages stored profiles", async () => {
    const p = path.join(dir, "profile.json");
    fs.writeFileSync(p, JSON.stringify({ id: "fax-only", displayName: "Fax only", tenantId: TENANT, copy: { voice: false, fax: true } }));
    expect((await umconnect("profile", "set", p)).code).toBe(0);
    expect((await umconnect("profiles")).stdout).toMatch(/fax-only\s+Fax only/);
    fs.writeFileSync(p, JSON.stringify({ id: "broken", displayName: "x", calendar: { pastDays: -1 } }));
    const bad = await umconnect("profile", "set", p);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/calendar\.pastDays/);
    expect((await umconnect("profile", "remove", "fax-only")).code).toBe(0);
    expect((await umconnect("profile", "remove", "default")).code).toBe(1);
    expect((await umconnect("profile", "remove", "kontakte")).code).toBe(1); // defined in the local file, not stored
  });
});
