/** Small pieces every command definition shares (src/cli/*Commands.ts). */
import type { Command } from "commander";
import type { ConnectorError } from "../errors.js";

/**
 * The command line (or its input file) is wrong: exit code 2, one line naming the problem and
 * the fix, nothing changed. Not a ConnectorError: it never leaves the CLI.
 */
export class UsageError extends Error {
  constructor(readonly problem: string, readonly fix: string, readonly problems: string[] = []) {
    super(`${problem}; ${fix}`);
    this.name = "UsageError";
  }
}

/** The deployment's settings (src/config.ts) are missing or invalid: exit code 2, one line. */
export class SettingsError extends Error {
  constructor(readonly error: ConnectorError) {
    super(error.message);
    this.name = "SettingsError";
  }
}

export const jsonOption = (c: Command): Command => c.option("--json", "machine-readable output: JSON on stdout (errors as JSON on stderr)");
export const tenantOption = (c: Command): Command => c.option("--tenant <tenantId>", "only this customer tenant");
export const linkIdArg = (c: Command): Command => c.argument("<linkId>", "the link (as `umconnect link list` shows it)");
