/**
 * The installed `umconnect` as a new administrator meets it: a process with NO setting at all.
 * Help on every command, one-line usage errors with exit code 2, typo suggestions, unknown
 * flags refused, shell completion, and the one line that names the missing settings.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { buildProgram, commandPath } from "../../src/cli/program.js";
import { cliContext } from "../../src/cli/context.js";
import { progressBar, progressLine } from "../../src/cli/progress.js";
import type { Command } from "commander";

const cli = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
type Result = { code: number; stdout: string; stderr: string };

/** The real command as a process, with every UMC_* setting removed from its environment. */
export function bare(...args: string[]): Promise<Result> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("UMC_")));
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", cli, ...args], { env, encoding: "utf8" }, (e, stdout, stderr) => {
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Every command of the tree (hidden aliases too), by its full name. */
function allCommands(): Command[] {
  const program = buildProgram(cliContext(() => undefined, () => undefined, undefined, { write: () => true }));
  const out: Command[] = [];
  const walk = (c: Command) => { for (const s of c.commands) { out.push(s); walk(s); } };
  walk(program);
  return out;
}

describe("umconnect without any setting", () => {
  it("prints help for the program and every command (process), exit code 0, stdout only", async () => {
    const top = await bare("--help");
    expect(top).toMatchObject({ code: 0, stderr: "" });
    for (const noun of ["link", "endpoint", "profile", "credentials", "tenant", "subscription", "trace", "doctor", "completion"]) expect(top.stdout).toContain(`\n  ${noun}`);
    expect(top.stdout).toMatch(/Exit codes:\n  0  done\n  1 .*\n  2  usage/);
    // Hidden aliases (the older top-level spellings) are not listed.
    expect(top.stdout).not.toMatch(/\n  (import|pause|tenants|endpoints)\b/);
    const verb = await bare("link", "import", "--help");
    expect(verb).toMatchObject({ code: 0, stderr: "" });
    expect(verb.stdout).toMatch(/Usage: umconnect link import \[options\] <file\.csv>/);
    for (const o of ["--tenant <tenantId>", "--dry-run", "--paused", "--json"]) expect(verb.stdout).toContain(o);
    expect((await bare("endpoint", "help", "test")).stdout).toMatch(/--mailbox <voiceMailbox>/);
  }, 60_000);

  it("has --help on every command, and --json on every command that prints a result (in process)", async () => {
    const commands = allCommands();
    expect(commands.length).toBeGreaterThan(40);
    for (const c of commands.filter((x) => !["help", "__complete"].includes(x.name()))) {
      const out: string[] = [];
      const ctx = cliContext((s) => out.push(s), (s) => out.push(s), undefined, { write: () => true });
      const program = buildProgram(ctx);
      const path = commandPath(c).split(" ").slice(1);
      await expect(program.parseAsync([...path, "--help"], { from: "user" })).rejects.toMatchObject({ exitCode: 0 });
      expect(out.join("\n"), path.join(" ")).toContain(`Usage: ${commandPath(c)}`);
      const leaf = c.commands.length === 0;
      if (leaf && !["completion"].includes(c.name())) expect(c.options.map((o) => o.long), path.join(" ")).toContain("--json");
    }
  });

  it("answers usage errors with one line naming the problem and the fix, exit code 2, and reads no setting", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["frobnicate"], /^umconnect: unknown command 'frobnicate'; see `umconnect --help` for the commands$/],
      [["link", "improt", "users.csv"], /^umconnect link: unknown command 'improt' \(did you mean import\?\); see `umconnect link --help`/],
      [["link", "pause", "L-1", "--jsno"], /^umconnect link pause: unknown option '--jsno' \(did you mean --json\?\); usage: umconnect link pause \[options\] \[linkIds\.\.\.\] \(`umconnect link pause --help`\)$/],
      [["link", "import", "users.csv"], /^umconnect link import: required option '--tenant <tenantId>' not specified; usage: /],
      [["link", "pause"], /^umconnect: no link given; usage: umconnect link pause \[options\] \[linkIds\.\.\.\]/],
      [["link", "conflicts"], /^umconnect link conflicts: missing required argument 'linkId'; usage: umconnect link conflicts \[options\] <linkId>/],
      [["link", "unlink", "L-1", "--exchange-copies", "maybe"], /^umconnect link unlink: option .*'maybe' is invalid\. Allowed choices are keep, remove\.; usage: /],
      [["credentials", "set", "L-1", "a-password"], /^umconnect credentials set: too many arguments/],
    ];
    for (const [args, expected] of cases) {
      const r = await bare(...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr.trimEnd().split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.stderr.trimEnd()).toMatch(expected);
      // A usage error is found before any setting is read: the settings are never mentioned.
      expect(r.stderr).not.toMatch(/UMC_/);
    }
  }, 120_000);

  it("names every missing setting and the fix in one line when a command needs the deployment, exit code 2", async () => {
    const r = await bare("link", "list");
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^umconnect: missing settings UMC_STORAGE_CONNECTION_STRING, UMC_CLIENT_ID, .*: UMC_STORAGE_CONNECTION_STRING: set UMC_STORAGE_CONNECTION_STRING, or both UMC_TABLE_SERVICE_URI and UMC_QUEUE_SERVICE_URI; .*fix: set them in the environment/);
    const json = await bare("link", "list", "--json");
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stderr)).toMatchObject({ code: "CONFIG_INVALID", problems: expect.arrayContaining([expect.stringMatching(/^UMC_CLIENT_ID: required in Azure/)]) });
  }, 60_000);

  it("completes commands, verbs, options and option values (process), without settings", async () => {
    expect((await bare("__complete", "--", "li")).stdout).toBe("link\n");
    expect((await bare("__complete", "--", "link", "re")).stdout).toBe("relink\nresume\nresync\n");
    expect((await bare("__complete", "--", "link", "unlink", "L-1", "--exchange-copies", "")).stdout).toBe("keep\nremove\n");
    expect((await bare("__complete", "--", "link", "import", "--d")).stdout).toBe("--dry-run\n");
    const bash = await bare("completion", "bash");
    expect(bash.code).toBe(0);
    expect(bash.stdout).toContain("complete -o default -F _umconnect_complete umconnect");
    expect((await bare("completion", "tcsh")).code).toBe(2);
  }, 60_000);
});

describe("progress", () => {
  it("draws count, rate and time left on a terminal, and nothing elsewhere", () => {
    expect(progressLine("importing", 40, 100, 4000, 10)).toBe("importing [####------] 40/100  10/s  ETA 6s");
    expect(progressLine("importing", 100, 100, 125_000, 10)).toBe("importing [##########] 100/100  0.8/s  done in 2m05s");
    let t = 0;
    const written: string[] = [];
    const tty = progressBar("verifying", { isTTY: true, write: (s) => written.push(s) }, { now: () => t, width: 4 });
    for (let i = 1; i <= 4; i++) { t += 500; tty.update(i, 4); }
    tty.finish();
    expect(written.at(-2)).toMatch(/^\rverifying \[####\] 4\/4  2\.0\/s  done in 2s/);
    expect(written.at(-1)).toBe("\n");
    const pipe: string[] = [];
    const quiet = progressBar("verifying", { isTTY: false, write: (s) => pipe.push(s) });
    quiet.update(1, 2); quiet.finish();
    expect(pipe).toEqual([]);
  });
});
