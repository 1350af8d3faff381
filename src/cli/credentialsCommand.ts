/** `umconnect credentials ...` (logic in src/admin/credentialsAdmin.ts). Passwords never come from the command line. */
import type { Command } from "commander";
import type { CliContext } from "./context.js";
import { jsonOption, UsageError } from "./commandKit.js";
import { readCsvArg, refusedFile } from "./linkCommands.js";
import { readPassword } from "./prompt.js";

const tested = (t: { ok: boolean; code?: string; message?: string } | undefined) => (!t ? "" : t.ok ? "; test login ok" : `; test login FAILED: ${t.code}: ${t.message}`);
const PROMPT = "--password-prompt";

export function credentialsCommands(ctx: CliContext, program: Command): void {
  const ask = () => (ctx.password ?? (() => readPassword("password: ")))();
  const needPrompt = (o: { passwordPrompt?: boolean }, usage: string) => {
    if (!o.passwordPrompt) throw new UsageError(`${PROMPT} is required (passwords are never taken from the command line)`, usage);
  };
  const credentials = program.command("credentials").description("voice-store credentials: stopped logins, links' own passwords, super-user password rotation");
  jsonOption(credentials.command("list", { isDefault: true }).description("credentials stopped after the store rejected them (the default)"))
    .action(async () => {
      const r = await (await import("../admin/credentialsAdmin.js")).listCredentials(ctx.deps());
      ctx.print(r.stopped.map((b) => `${b.key}  ${b.state} since ${b.since}  next try ${b.nextAttemptAt}  store said "${b.answer}"`).join("\n") || "(no credential is stopped)", r);
    });
  jsonOption(credentials.command("set").description("a link's own password (stores without a super user), read from the terminal or one line of stdin")
    .argument("<linkId>", "the link").option(PROMPT, "read the password from the terminal (or one line of stdin)"))
    .action(async (linkId: string, o: { passwordPrompt?: boolean }) => {
      needPrompt(o, "usage: umconnect credentials set <linkId> --password-prompt");
      const r = await (await import("../admin/credentialsAdmin.js")).setLinkPassword(ctx.deps(), linkId, await ask());
      ctx.print(`link ${r.linkId}: password stored as secret ${r.secretName}${tested(r.test)}`, r);
      if (r.test && !r.test.ok) ctx.exitCode = 1;
    });
  jsonOption(credentials.command("rotate").description("a new password for a link, or with --endpoint the store's super user; then one test login")
    .argument("[linkId]", "the link (or --endpoint)")
    .option("--endpoint <endpointId>", "rotate the voice store's super-user password")
    .option("--mailbox <voiceMailbox>", "with --endpoint: the mailbox to test the login with")
    .option(PROMPT, "read the password from the terminal (or one line of stdin)"))
    .action(async (linkId: string | undefined, o: { endpoint?: string; mailbox?: string; passwordPrompt?: boolean }) => {
      const usage = "usage: umconnect credentials rotate <linkId> --password-prompt | credentials rotate --endpoint <id> --password-prompt [--mailbox M]";
      needPrompt(o, usage);
      if (o.endpoint) {
        const r = await (await import("../admin/credentialsAdmin.js")).rotateEndpointPassword(ctx.deps(), o.endpoint, await ask(), o.mailbox);
        ctx.print(`endpoint ${r.endpointId}: new version of secret ${r.secretName}${tested(r.test)}`, r);
        if (r.test && !r.test.ok) ctx.exitCode = 1;
        return;
      }
      if (!linkId) throw new UsageError("no link or --endpoint given", usage);
      const r = await (await import("../admin/credentialsAdmin.js")).rotateLinkPassword(ctx.deps(), linkId, await ask());
      ctx.print(`link ${r.linkId}: password stored as secret ${r.secretName}${tested(r.test)}`, r);
      if (r.test && !r.test.ok) ctx.exitCode = 1;
    });
  jsonOption(credentials.command("import").description("links' own passwords from CSV (voiceMailbox,endpointId,password) into Key Vault; all or nothing")
    .argument("<file.csv>", "the passwords; problems are reported by line, never with the password"))
    .action(async (file: string) => {
      const r = await (await import("../admin/credentialsAdmin.js")).importLinkPasswords(ctx.deps(), readCsvArg(file)).catch((e: unknown) => { throw refusedFile(e, file, "stored"); });
      ctx.print(`stored ${r.set.length} link password(s)`, r.set);
    });
}
