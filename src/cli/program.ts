/**
 * The `umconnect` command tree on commander (https://github.com/tj/commander.js): nouns
 * (link, endpoint, profile, credentials, tenant, subscription) with verbs, plus trace, doctor
 * and completion. Building it needs no setting: help, usage errors and completion work on a
 * machine with no configuration; a command's action asks for the deployment (ctx.deps()) only
 * when it runs.
 *
 * Exit codes: 0 done; 1 the command ran and failed (the service refused, a store rejected a
 * login, a check failed); 2 usage: the command line, its input file or the settings are wrong,
 * and nothing was changed.
 */
import { Command, CommanderError } from "commander";
import type { CliContext } from "./context.js";
import { jsonOption, UsageError } from "./commandKit.js";
import { linkVerbs } from "./linkCommands.js";
import { configCommands } from "./configCommands.js";
import { credentialsCommands } from "./credentialsCommand.js";
import { completionCommands } from "./completion.js";
import { doctorCommand } from "./doctorCommand.js";

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

const EXIT_HELP = `
Exit codes:
  0  done
  1  the command ran and failed (refused by the service, a login rejected, a check failed)
  2  usage: unknown command or option, missing argument, a bad input file or a missing
     setting; nothing was changed

Settings: the UMC_* environment variables of the app (README "Settings"); only commands that
touch the deployment read them. \`umconnect doctor\` checks them and everything they point at.
Shell completion: eval "$(umconnect completion bash)"  (or zsh, fish)`;

/**
 * A command whose parse errors are one line: the problem, commander's suggestion for a typo,
 * and the fix (the command's usage and where its help is). Exit code 2.
 */
export class UmcCommand extends Command {
  override createCommand(name?: string): UmcCommand {
    return new UmcCommand(name);
  }

  override error(message: string, options?: { code?: string; exitCode?: number }): never {
    if (options?.code === "commander.executeSubCommandAsync" || options?.exitCode === 0) return super.error(message, options);
    const [problem = message, suggestion] = message.replace(/^error: /, "").split("\n");
    const did = suggestion ? ` (${suggestion.replace(/^\(|\)$/g, "").replace(/^Did/, "did")})` : "";
    const path = commandPath(this);
    const fix = options?.code === "commander.unknownCommand" && this.commands.length
      ? `see \`${path} --help\` for the commands`
      : `usage: ${path} ${this.usage()} (\`${path} --help\`)`;
    return super.error(`${path}: ${problem}${did}; ${fix}`, { code: options?.code, exitCode: EXIT.usage });
  }
}

export function commandPath(c: Command): string {
  const names: string[] = [];
  for (let x: Command | null = c; x; x = x.parent) names.unshift(x.name());
  return names.join(" ");
}

export function buildProgram(ctx: CliContext): UmcCommand {
  const program = new UmcCommand("umconnect");
  program
    .description("administer umconnect: link voice mailboxes to Exchange users, manage voice stores, profiles and credentials, check a deployment")
    .configureOutput({ writeOut: (s) => ctx.out(s.replace(/\n$/, "")), writeErr: (s) => ctx.err(s.replace(/\n$/, "")) })
    .exitOverride()
    .showSuggestionAfterError(true)
    .helpCommand(true)
    .addHelpText("after", EXIT_HELP)
    // Every command names what it does to the deployment; one --json output shape per command.
    .hook("preAction", async (_self, action) => { ctx.json = Boolean(action.opts().json); await ctx.prepare(); });

  // link: the verbs, and each one's older top-level spelling as a hidden alias.
  const link = program.command("link").description("mailbox links: import, export, add, pause, resume, resync, adopt, unlink, relink, ...");
  for (const verb of linkVerbs(ctx)) {
    verb.define(link.command(verb.name));
    if (verb.legacy) verb.define(program.command(verb.legacy, { hidden: true }));
  }

  const tenant = program.command("tenant").description("customer tenants that gave admin consent");
  const listTenants = (c: Command) => jsonOption(c.description("consented tenants with their granted permissions")).action(async () => {
    const t = await ctx.deps().state.listTenants();
    ctx.print(t.map((x) => `${x.tenantId}  ${x.status}  consented ${x.consentedAt ?? "-"}  ${x.grantedRoles.join(",")}`).join("\n") || "(no tenants)", t);
  });
  listTenants(tenant.command("list"));
  listTenants(program.command("tenants", { hidden: true }));

  configCommands(ctx, program);
  credentialsCommands(ctx, program);

  const subscription = program.command("subscription").description("Graph change-notification subscriptions");
  const audit = (c: Command, legacy: boolean) => jsonOption(c.description("Graph's subscriptions per mailbox: removes orphans and duplicates")
    .option("--tenant <tenantId>", "only this customer tenant")
    .option("--dry-run", "list what would be removed; remove nothing"))
    .action(async (o: { tenant?: string; dryRun?: boolean; audit?: boolean }) => {
      if (legacy && !o.audit) throw new UsageError("subscriptions needs --audit", "usage: umconnect subscription audit [--tenant T] [--dry-run]");
      const rows = await (await import("../admin/subscriptionAudit.js")).auditSubscriptions(ctx.deps(), { remove: !o.dryRun, tenantId: o.tenant });
      ctx.print((await import("../admin/subscriptionAudit.js")).formatAudit(rows), rows);
    });
  audit(subscription.command("audit"), false);
  audit(program.command("subscriptions", { hidden: true }).option("--audit", "audit"), true);

  jsonOption(program.command("trace").description("IMAP protocol lines of one link or voice store to the log for a while (credentials and contents redacted)")
    .argument("[linkId]", "the link")
    .option("--endpoint <endpointId>", "trace every link of this voice store instead")
    .option("--minutes <n>", "how long (at most 60)", "10"))
    .action(async (linkId: string | undefined, o: { endpoint?: string; minutes: string }) => {
      if (!linkId && !o.endpoint) throw new UsageError("no link or --endpoint given", "usage: umconnect trace <linkId> | --endpoint <id> [--minutes 10]");
      if (!/^\d{1,3}$/.test(o.minutes)) throw new UsageError(`--minutes ${o.minutes} is not a whole number of minutes`, "usage: umconnect trace <linkId> [--minutes 10]");
      const r = await (await import("../app/protocolTrace.js")).startTrace(ctx.deps(), o.endpoint ? { kind: "endpoint", endpointId: o.endpoint } : { kind: "link", linkId: linkId! }, Number(o.minutes));
      ctx.print(`IMAP protocol trace on until ${r.until} (log event imap.trace; credentials and contents redacted)`, r);
    });

  const mirror = program.command("mirror").description("the disaster-recovery mirror to each store's backup (docs/mirror.md)");
  jsonOption(mirror.command("verify").description("compare a mailbox's mirrored folders on production and backup: counts, missing, extra, flag differences (writes nothing)")
    .argument("<mailbox>", "link id, or voice mailbox on an endpoint with a backup"))
    .action(async (mailbox: string) => {
      const m = await import("../admin/mirrorAdmin.js");
      const r = await m.verifyMirror(ctx.deps(), await m.findMirroredLink(ctx.deps(), mailbox));
      ctx.print(m.formatVerify(r), r);
      if (!r.inStep) ctx.exitCode = 1;
    });
  jsonOption(mirror.command("repair").description("queue a full verify run that copies what is missing, fixes flags and removes what production no longer has")
    .argument("<mailbox>", "link id, or voice mailbox on an endpoint with a backup"))
    .action(async (mailbox: string) => {
      const m = await import("../admin/mirrorAdmin.js");
      const r = await m.repairMirror(ctx.deps(), await m.findMirroredLink(ctx.deps(), mailbox));
      ctx.print(`full mirror run queued for ${r.linkId}`, r);
    });

  doctorCommand(ctx, program);
  completionCommands(ctx, program);
  return program;
}

export function isCommanderExit(e: unknown): e is CommanderError {
  return e instanceof CommanderError;
}
