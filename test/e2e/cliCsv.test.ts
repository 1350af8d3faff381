/**
 * `umconnect link import` as a process against the running world, with the CSV files Excel
 * (several locales) and Google Sheets write (test/fixtures/csv/README.md): dry run, import,
 * and refusals that change nothing: a file with mistakes on several lines (every one reported
 * by its line, exit 2), an unknown flag, a missing setting.
 */
import fs from "node:fs";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, TENANT, type World } from "./world.js";

let w: World;
const cli = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/csv/${name}`, import.meta.url));
type Result = { code: number; stdout: string; stderr: string };

function umconnect(env: Record<string, string | undefined>, ...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", cli, ...args], { env: env as NodeJS.ProcessEnv, encoding: "utf8" }, (e, stdout, stderr) => {
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}
const run = (...args: string[]) => umconnect({ ...process.env, ...w.env }, ...args);
const linked = async () => (await w.deps.state.listLinks({ tenantId: TENANT })).map((l) => `${l.voiceMailbox}=${l.upn}`).sort();

const USERS = ["ann.lee", "bob.ray", "carl.weiss", "dora", "eve", "fred", "gina", "hank", "ian", "jo", "kim"];

beforeAll(async () => {
  w = await startWorld({ users: ["6101", "6102", "6103", "6104", "6105", "6106", "6107", "6108", "6109"], quiet: true, timers: false });
  for (const u of USERS) w.sim.addUser(TENANT, { userPrincipalName: `${u}@contoso.test`, proxyAddresses: [`SMTP:${u}@contoso.test`] });
}, 60_000);
afterAll(async () => { await w?.stop(); });

describe("umconnect link import with spreadsheet exports", () => {
  it("shows what a dry run would link, by line, and links nothing", async () => {
    const r = await run("link", "import", fixture("excel-en-US-csv-utf8.csv"), "--tenant", TENANT, "--dry-run", "--json");
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(""); // no progress bar: stderr is not a terminal
    // Line 4: the quoted notes cell of line 2 holds a line break.
    expect(JSON.parse(r.stdout)).toMatchObject({ dryRun: true, planned: [
      { line: 2, voiceMailbox: "6101", endpointId: "voice-1", upn: "ann.lee@contoso.test", profileId: "default" },
      { line: 4, voiceMailbox: "6102", upn: "bob.ray@contoso.test", profileId: "default" },
    ] });
    const human = await run("link", "import", fixture("excel-en-US-csv-utf8.csv"), "--tenant", TENANT, "--dry-run");
    expect(human.stdout).toContain("line 4: 6102@voice-1 <-> bob.ray@contoso.test  profile default");
    expect(human.stdout).toContain("dry run: 2 link(s) would be made; nothing was changed");
    expect(await linked()).toEqual([]);
  }, 60_000);

  it("imports Excel (en-US UTF-8 with BOM, de-DE with ;, fr-FR in Windows-1252, Unicode Text) and Google Sheets files", async () => {
    const files: Array<[string, string[]]> = [
      ["excel-en-US-csv-utf8.csv", ["6101", "6102"]],
      ["excel-de-DE-csv-utf8.csv", ["6103", "6104"]],
      ["excel-fr-FR-csv-ansi.csv", ["6105", "6106"]],
      ["google-sheets.csv", ["6107", "6108"]],
      ["excel-unicode-text.txt", ["6109"]],
    ];
    for (const [file, boxes] of files) {
      const r = await run("link", "import", fixture(file), "--tenant", TENANT, "--json");
      expect(r.code, `${file}: ${r.stderr}`).toBe(0);
      expect((JSON.parse(r.stdout) as Array<{ voiceMailbox: string }>).map((l) => l.voiceMailbox), file).toEqual(boxes);
    }
    // Every imported link can log in to its voice store (a progress bar on a terminal, none here).
    const verify = await run("link", "verify", "--tenant", TENANT, "--json");
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stderr).toBe("");
    expect((JSON.parse(verify.stdout) as Array<{ ok: boolean }>).filter((r) => r.ok)).toHaveLength(9);
    expect(await linked()).toEqual(["6101=ann.lee@contoso.test", "6102=bob.ray@contoso.test", "6103=carl.weiss@contoso.test", "6104=dora@contoso.test", "6105=eve@contoso.test", "6106=fred@contoso.test", "6107=gina@contoso.test", "6108=hank@contoso.test", "6109=ian@contoso.test"]);
  }, 120_000);

  it("refuses a file with mistakes on several lines: each by its line, one line saying what to do, exit 2, nothing linked", async () => {
    const before = await linked();
    const r = await run("link", "import", fixture("bad-rows-excel-de-DE.csv"), "--tenant", TENANT);
    expect(r.code).toBe(2);
    const [head, ...lines] = r.stderr.trimEnd().split("\n");
    expect(head).toBe(`umconnect: ${fixture("bad-rows-excel-de-DE.csv")} refused, nothing was imported (8 problems); fix these lines and run it again`);
    expect(lines.map((l) => l.trim())).toEqual([
      "line 5: unknown voice-store endpoint voice-9",
      'line 6: voice mailbox "bad box" is not valid',
      'line 6: "not-an-address" is not an SMTP address',
      "line 6: no Exchange user has the address not-an-address",
      "line 7: expected 4 fields (voiceMailbox,endpointId,smtp,profileId, then the file's other columns), found 2",
      "line 8: voice mailbox 6110 is already on line 2",
      "line 8: jo@contoso.test is already on line 2",
      "line 8: unknown feature profile nope",
    ]);
    expect(await linked()).toEqual(before);
  }, 60_000);

  it("refuses an unknown flag and a missing setting with one line and exit 2, changing nothing", async () => {
    const before = await linked();
    const typo = await run("link", "import", fixture("google-sheets.csv"), "--tenant", TENANT, "--pasued");
    expect(typo.code).toBe(2);
    expect(typo.stderr).toBe("umconnect link import: unknown option '--pasued' (did you mean --paused?); usage: umconnect link import [options] <file.csv> (`umconnect link import --help`)\n");
    const env = { ...process.env, ...w.env, UMC_STORAGE_CONNECTION_STRING: undefined };
    const missing = await umconnect(env, "link", "import", fixture("google-sheets.csv"), "--tenant", TENANT);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^umconnect: missing setting UMC_STORAGE_CONNECTION_STRING: UMC_STORAGE_CONNECTION_STRING: set UMC_STORAGE_CONNECTION_STRING, or both UMC_TABLE_SERVICE_URI and UMC_QUEUE_SERVICE_URI; fix: .*\n$/);
    expect(await linked()).toEqual(before);
    expect(fs.existsSync(fixture("google-sheets.csv"))).toBe(true);
  }, 60_000);
});
