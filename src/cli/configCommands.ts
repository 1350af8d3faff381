/** `umconnect endpoint ...` and `umconnect profile ...` (logic in src/admin/configAdmin.ts). */
import fs from "node:fs";
import type { Command } from "commander";
import type { CliContext } from "./context.js";
import { jsonOption, UsageError } from "./commandKit.js";

function readJsonArg(file: string): unknown {
  let text: string;
  try { text = fs.readFileSync(file, "utf8"); } catch { throw new UsageError(`cannot read ${file}`, "give the path of an existing JSON file"); }
  try { return JSON.parse(text); } catch (e) { throw new UsageError(`${file} is not JSON (${(e as Error).message})`, "fix the file's syntax"); }
}

export function configCommands(ctx: CliContext, program: Command): void {
  const endpoint = program.command("endpoint").description("voice stores (IMAP endpoints): list, set, remove, test, rotate-secret");
  const listEndpoints = (c: Command) => jsonOption(c.description("voice stores as loaded (no secrets)")).action(async () => {
    const e = (await ctx.deps().directory()).listEndpoints();
    ctx.print(e.map((x) => `${x.id}  ${x.host}:${x.port}  tls ${x.tls}  auth ${x.auth}${x.passwordSecret ? ` (secret ${x.passwordSecret})` : ""}  max ${x.maxConnections} connections  ${x.source}  owner ${x.owner}  signing ${x.signing}${x.locationCallbackUrl ? `  location callback ${x.locationCallbackUrl}` : ""}${x.refused ? `  REFUSED: ${x.refused}` : ""}`).join("\n") || "(no endpoints)", e);
  });
  listEndpoints(endpoint.command("list"));
  listEndpoints(program.command("endpoints", { hidden: true }));
  jsonOption(endpoint.command("set").description("add or replace a stored voice store; its password is a named secret (Key Vault / local file)").argument("<endpoint.json>", "the endpoint's settings (README: Voice stores)"))
    .action(async (file: string) => {
      const input = readJsonArg(file) as { id: string };
      await (await import("../admin/configAdmin.js")).setEndpoint(ctx.deps(), input as never);
      ctx.print(`endpoint ${input.id} saved; running instances pick it up within a minute`, { endpoint: input.id, saved: true });
    });
  jsonOption(endpoint.command("remove").description("remove a stored voice store (refused while links use it)").argument("<endpointId>", "the voice store"))
    .action(async (id: string) => {
      await (await import("../admin/configAdmin.js")).removeEndpoint(ctx.deps(), id);
      ctx.print(`endpoint ${id} removed`, { endpoint: id, removed: true });
    });
  jsonOption(endpoint.command("test").description("log in for one mailbox and open its INBOX; lifts a lockout stop when it works").argument("<endpointId>", "the voice store")
    .requiredOption("--mailbox <voiceMailbox>", "the mailbox to log in for"))
    .action(async (id: string, o: { mailbox: string }) => {
      const r = await (await import("../admin/configAdmin.js")).testEndpoint(ctx.deps(), id, o.mailbox);
      ctx.print(`${id}: logged in for ${o.mailbox} and opened INBOX (${r.messages} messages)`, { endpoint: id, mailbox: o.mailbox, ok: true, ...r });
    });
  jsonOption(endpoint.command("rotate-secret").description("a new signing secret for the store's pushes and callbacks, printed once; the old one stays valid a while").argument("<endpointId>", "the voice store")
    .option("--overlap-hours <hours>", "how long the previous secret is still accepted", "24"))
    .action(async (id: string, o: { overlapHours: string }) => {
      if (!/^\d{1,4}(\.\d+)?$/.test(o.overlapHours)) throw new UsageError(`--overlap-hours ${o.overlapHours} is not a number of hours`, "usage: umconnect endpoint rotate-secret <endpointId> [--overlap-hours 24]");
      const r = await (await import("../admin/configAdmin.js")).rotateSigningSecret(ctx.deps(), id, Math.round(Number(o.overlapHours) * 3600));
      // The new secret is shown once, for the voice system's configuration; it is not logged.
      ctx.print(`${id}: new signing secret in ${r.secretName} (running instances use it within a minute)${r.previousUntil ? `; the previous one is accepted until ${r.previousUntil}` : ""}\nconfigure the voice system with: ${r.secret}`, { endpoint: id, ...r });
    });

  const profile = program.command("profile").description("feature profiles: list, set, remove");
  const listProfiles = (c: Command) => jsonOption(c.description("feature profiles as loaded")).action(async () => {
    const p = (await ctx.deps().directory()).listProfiles();
    ctx.print(p.map((x) => `${x.id}  ${x.displayName}: voice${x.copy.fax ? "+fax" : ""} -> ${x.exchangeFolder}${x.contacts.enabled ? ", contacts" : ""}${x.calendar.enabled ? `, calendar ${x.calendar.pastDays}/${x.calendar.futureDays} days${x.calendar.changeLocation.enabled ? `, location "${x.calendar.changeLocation.text}"` : ""}` : ""}`).join("\n"), p);
  });
  listProfiles(profile.command("list"));
  listProfiles(program.command("profiles", { hidden: true }));
  jsonOption(profile.command("set").description("add or replace a stored profile (validated in full)").argument("<profile.json>", "the profile"))
    .action(async (file: string) => {
      const id = await (await import("../admin/configAdmin.js")).setProfile(ctx.deps(), readJsonArg(file));
      ctx.print(`profile ${id} saved; running instances pick it up within a minute`, { profile: id, saved: true });
    });
  jsonOption(profile.command("remove").description("remove a stored profile (refused while links use it)").argument("<profileId>", "the profile"))
    .action(async (id: string) => {
      await (await import("../admin/configAdmin.js")).removeProfile(ctx.deps(), id);
      ctx.print(`profile ${id} removed`, { profile: id, removed: true });
    });
}
