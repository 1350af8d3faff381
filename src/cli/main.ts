#!/usr/bin/env node
/**
 * `umconnect`: the administrator's command line. `umconnect --help` lists the commands,
 * `umconnect <noun> --help` their verbs, `umconnect help <noun> <verb>` one command (options,
 * arguments); none of that needs a setting. Commands that touch the deployment read the same
 * UMC_* settings as the app (src/config.ts), when they run. The tree is in src/cli/program.ts,
 * exit codes too (0 ok, 1 failed, 2 usage). Add --json to any command for scripts.
 */
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { isConnectorError, type ConnectorError } from "../errors.js";
import { cliContext } from "./context.js";
import { buildProgram, EXIT, isCommanderExit } from "./program.js";
import { SettingsError, UsageError } from "./commandKit.js";

export async function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s + "\n"), err: (s: string) => void = (s) => process.stderr.write(s + "\n"), password?: () => Promise<string>): Promise<number> {
  const ctx = cliContext(out, err, password, process.stderr);
  const program = buildProgram(ctx);
  const json = () => ctx.json || argv.includes("--json");
  try {
    await program.parseAsync(argv, { from: "user" });
    return ctx.exitCode;
  } catch (e) {
    // Commander has printed help or the one-line usage error already (src/cli/program.ts).
    if (isCommanderExit(e)) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (e instanceof UsageError) {
      err(json() ? JSON.stringify({ code: "USAGE", message: e.problem, fix: e.fix, ...(e.problems.length ? { problems: e.problems } : {}) }) : `umconnect: ${e.problem}; ${e.fix}${e.problems.length ? "\n  " + e.problems.join("\n  ") : ""}`);
      return EXIT.usage;
    }
    if (e instanceof SettingsError) {
      const line = settingsLine(e.error);
      err(json() ? JSON.stringify({ code: e.error.code, message: line, problems: e.error.problems }) : `umconnect: ${line}`);
      return EXIT.usage;
    }
    if (isConnectorError(e)) {
      const hint = accessHint(e);
      err(json() ? JSON.stringify({ ...e.toJSON(), ...(hint ? { hint } : {}) }) : `${e.code}: ${e.message}${e.problems.length ? "\n  " + e.problems.join("\n  ") : ""}${hint ? `\n  ${hint}` : ""}`);
      return EXIT.failed;
    }
    const message = (e as Error)?.message ?? String(e);
    err(json() ? JSON.stringify({ code: "INTERNAL", message }) : `umconnect: ${message}`);
    return EXIT.failed;
  }
}

/**
 * Settings problems as one line: the settings named (missing first), each with what to set,
 * and where to look. src/config.ts words every problem as "<SETTING>: <what is wrong or what to do>".
 */
export function settingsLine(e: ConnectorError): string {
  const problems = e.problems.length ? e.problems : [e.message];
  const missing = problems.filter((p) => /required|^[A-Z_]+: set /.test(p));
  const head = missing.length ? `missing setting${missing.length > 1 ? "s" : ""} ${missing.map((p) => p.split(":")[0]).join(", ")}` : `invalid setting${problems.length > 1 ? "s" : ""} ${problems.map((p) => p.split(":")[0]).join(", ")}`;
  return `${head}: ${problems.join("; ")}; fix: set them in the environment (README "Settings"), then check with \`umconnect doctor\``;
}

/** What an operator can do when a sign-in or a missing data role is behind an error. */
function accessHint(e: unknown): string | undefined {
  for (let c = e as { name?: string; statusCode?: number; cause?: unknown } | undefined; c; c = c.cause as typeof c) {
    if (/CredentialUnavailable|AggregateAuthentication|AuthenticationRequired/.test(c.name ?? "")) return "sign in first: az login (or azd auth login); the CLI uses DefaultAzureCredential";
    if (c.statusCode === 403) return "your sign-in lacks a data role: azd provision grants AZURE_PRINCIPAL_ID Storage Table/Queue Data Contributor and Key Vault Secrets Officer (new role assignments take a few minutes)";
  }
  return undefined;
}

// Run when executed (also through npm's bin symlink), not when imported.
const invoked = process.argv[1] ? fs.realpathSync(process.argv[1]) : "";
if (invoked === fileURLToPath(import.meta.url) || invoked === fileURLToPath(import.meta.url).replace(/\.ts$/, ".js")) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e) => { process.stderr.write(String(e?.stack ?? e) + "\n"); process.exit(1); });
}
