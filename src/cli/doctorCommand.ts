/** `umconnect doctor` (checks in src/admin/doctor.ts): one line per check as it finishes, exit 1 when one failed. */
import type { Command } from "commander";
import type { CliContext } from "./context.js";
import { jsonOption, SettingsError } from "./commandKit.js";
import type { DoctorCheck } from "../admin/doctor.js";

const MARK = { pass: "PASS", warn: "WARN", fail: "FAIL", skip: "SKIP" } as const;

export function doctorCommand(ctx: CliContext, program: Command): void {
  jsonOption(program.command("doctor").description("check the deployment in order: settings, storage, queue, secrets, Graph tokens and permissions per tenant, voice stores, notification URLs"))
    .action(async () => {
      let n = 0;
      const line = (c: DoctorCheck) => `${String(++n).padStart(2)}. ${MARK[c.state]}  ${c.check}: ${c.detail}${c.fix ? `\n       fix: ${c.fix}` : ""}`;
      // Settings problems are the first check's result here, not a usage error.
      const load = () => { try { return ctx.deps(); } catch (e) { throw e instanceof SettingsError ? e.error : e; } };
      const checks = await (await import("../admin/doctor.js")).runDoctor(load, (c) => { if (!ctx.json) ctx.out(line(c)); });
      const failed = checks.filter((c) => c.state === "fail").length;
      if (ctx.json) ctx.out(JSON.stringify({ ok: failed === 0, checks }, null, 2));
      else ctx.out(failed ? `${failed} check(s) failed: fix the first one first (the later ones may follow from it)` : `all checks passed${checks.some((c) => c.state === "warn") ? " (with warnings)" : ""}`);
      if (failed) ctx.exitCode = 1;
    });
}
