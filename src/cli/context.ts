/**
 * What every command's action gets: output (human or --json), the deployment's dependencies
 * built on first use (so `--help`, usage errors and completion never need a setting), progress
 * bars, and the password source. The deployment's modules (Azure SDKs, Graph, IMAP) are loaded
 * only before an action runs (prepare), so help and usage errors answer at once.
 */
import type { Deps } from "../app/deps.js";
import { isConnectorError } from "../errors.js";
import { SettingsError } from "./commandKit.js";
import { progressBar, type Progress, type ProgressStream } from "./progress.js";

export interface CliContext {
  /** Set from the running command's --json before its action. */
  json: boolean;
  out(s: string): void;
  err(s: string): void;
  /** Human text, or the data as JSON with --json. */
  print(human: string, data: unknown): void;
  /** Loads the modules deps() needs; called before every action. */
  prepare(): Promise<void>;
  /** The deployment's dependencies; parses the settings the first time (CONFIG_INVALID when they are wrong). */
  deps(): Deps;
  /** A bar on the terminal for a long command; silent when not a TTY or with --json. */
  progress(label: string): Progress;
  password?: () => Promise<string>;
  /** The exit code an action chose (a command that ran but failed its purpose, e.g. a test login). */
  exitCode: number;
}

export function cliContext(out: (s: string) => void, err: (s: string) => void, password: (() => Promise<string>) | undefined, progressStream: ProgressStream): CliContext {
  let deps: Deps | undefined;
  let mods: [typeof import("../config.js"), typeof import("../app/deps.js"), typeof import("../log.js")] | undefined;
  const ctx: CliContext = {
    json: false,
    out, err, password,
    exitCode: 0,
    print(human, data) { out(ctx.json ? JSON.stringify(data, null, 2) : human); },
    async prepare() {
      mods ??= await Promise.all([import("../config.js"), import("../app/deps.js"), import("../log.js")]);
    },
    deps() {
      if (!mods) throw new Error("the command's modules were not loaded (prepare)");
      const [{ getConfig }, { buildDeps, workstationCredential }, { createLogger }] = mods;
      if (!deps) {
        try {
          const config = getConfig();
          // Storage by service URI (Azure): the operator's own Entra sign-in (az login), not keys.
          deps = buildDeps(config, createLogger({ level: "error" }), config.storage.connectionString ? {} : { credential: workstationCredential(config.identity.managedIdentityClientId) });
        } catch (e) {
          throw isConnectorError(e, "CONFIG_INVALID") ? new SettingsError(e) : e;
        }
      }
      return deps;
    },
    progress(label) { return progressBar(label, progressStream, { quiet: ctx.json }); },
  };
  return ctx;
}
