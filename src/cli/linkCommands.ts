/**
 * `umconnect link ...`: everything done to mailbox links (logic in src/admin/links.ts,
 * lifecycle.ts, adoption.ts, groupLinks.ts). Each verb is also reachable under its older
 * top-level name (`umconnect pause <linkId>`, `umconnect import ...`), hidden from help, so
 * scripts written before the noun-verb layout keep working.
 */
import fs from "node:fs";
import { Command, Option } from "commander";
import type { CliContext } from "./context.js";
import { jsonOption, linkIdArg, tenantOption, UsageError } from "./commandKit.js";
import type { ImportResult } from "../admin/links.js";
import type { AdoptionPreview } from "../admin/adoption.js";
import { decodeCsvFile } from "../admin/csv.js";
import type { MailboxLink } from "../state/stateStore.js";
import { ConnectorError, isConnectorError } from "../errors.js";

interface Verb {
  name: string;
  /** The older top-level spelling kept as a hidden alias. */
  legacy?: string;
  define(c: Command): Command;
}

const linkLine = (l: MailboxLink) => `${l.linkId}  ${l.voiceMailbox}@${l.endpointId} <-> ${l.upn ?? l.userId}  ${l.state}  profile ${l.profileId}${l.profileOverride ? " + override" : ""}`;
const statusLine = (l: MailboxLink) => `${l.linkId}  ${l.state}  last sync ${l.lastSyncAt ?? "never"}  unread ${l.unreadVoice}${l.lastError ? `  ERROR ${l.lastError.code}: ${l.lastError.message}` : ""}`;

/** Reads a CSV the way spreadsheets save it (src/admin/csv.ts); a missing file is a usage error. */
export function readCsvArg(file: string): string {
  let bytes: Buffer;
  try { bytes = fs.readFileSync(file); } catch { throw new UsageError(`cannot read ${file}`, "give the path of an existing CSV file"); }
  return decodeCsvFile(bytes);
}

/** The links a many-link command works on: the ids given, or every link of --tenant (or --all). */
async function selectLinks(ctx: CliContext, ids: string[], o: { tenant?: string; all?: boolean }, usage: string): Promise<string[]> {
  if (ids.length && (o.tenant || o.all)) throw new UsageError("give link ids or --tenant/--all, not both", usage);
  if (ids.length) return ids;
  if (!o.tenant && !o.all) throw new UsageError("no link given", usage);
  return (await ctx.deps().state.listLinks({ tenantId: o.tenant })).map((l) => l.linkId).sort();
}

export function linkVerbs(ctx: CliContext): Verb[] {
  const many = (c: Command) => c
    .option("--tenant <tenantId>", "every link of this tenant")
    .option("--all", "every link of every tenant");
  return [
    {
      name: "list", legacy: "links",
      define: (c) => tenantOption(jsonOption(c.description("the links: voice mailbox, Exchange user, state, profile"))).action(async (o: { tenant?: string }) => {
        const links = await ctx.deps().state.listLinks({ tenantId: o.tenant });
        ctx.print(links.map(linkLine).join("\n") || "(no links)", links);
      }),
    },
    {
      name: "status", legacy: "status",
      define: (c) => tenantOption(jsonOption(c.description("per link: last sync, unread voicemail, last error"))).action(async (o: { tenant?: string }) => {
        const links = await ctx.deps().state.listLinks({ tenantId: o.tenant });
        ctx.print(links.map(statusLine).join("\n") || "(no links)", links);
      }),
    },
    {
      name: "import", legacy: "import",
      define: (c) => jsonOption(c.description("link the mailboxes listed in a CSV (voiceMailbox,endpointId,smtp,profileId); all or nothing, every problem by line")
        .argument("<file.csv>", "as Excel or Google Sheets save it: , or ; separated, UTF-8 (with or without BOM) or Windows-1252")
        .requiredOption("--tenant <tenantId>", "the customer tenant the mailboxes belong to")
        .option("--paused", "linked but waiting (look with `link resync <linkId> --adopt --dry-run`, then `link resume`)")
        .option("--dry-run", "check everything and show what would be linked; change nothing"))
        .action(async (file: string, o: { tenant: string; paused?: boolean; dryRun?: boolean }) => {
          const csv = readCsvArg(file);
          const bar = ctx.progress(o.dryRun ? "checking" : "importing");
          let r: ImportResult;
          try { r = await (await import("../admin/links.js")).importLinks(ctx.deps(), o.tenant, csv, (done, total) => bar.update(done, total), { paused: o.paused, dryRun: o.dryRun }); }
          catch (e) { throw refusedFile(e, file, "imported"); }
          finally { bar.finish(); }
          if (o.dryRun) {
            ctx.print([...r.planned.map((p) => `line ${p.line}: ${p.voiceMailbox}@${p.endpointId} <-> ${p.upn}  profile ${p.profileId}${o.paused ? "  (paused)" : ""}`), `dry run: ${r.planned.length} link(s) would be made; nothing was changed`].join("\n"), { dryRun: true, planned: r.planned });
          } else ctx.print(`imported ${r.created.length} links`, r.created);
        }),
    },
    {
      name: "add",
      define: (c) => jsonOption(c.description("link one mailbox, with exactly the checks of an import")
        .argument("<voiceMailbox>", "the mailbox number on the voice store")
        .requiredOption("--endpoint <endpointId>", "the voice store")
        .requiredOption("--smtp <address>", "the Exchange user's SMTP address")
        .option("--profile <profileId>", "feature profile", "default")
        .requiredOption("--tenant <tenantId>", "the customer tenant"))
        .action(async (voiceMailbox: string, o: { endpoint: string; smtp: string; profile: string; tenant: string }) => {
          const l = await (await import("../admin/links.js")).linkMailbox(ctx.deps(), o.tenant, { voiceMailbox, endpointId: o.endpoint, smtp: o.smtp, profileId: o.profile });
          ctx.print(`${l.linkId}  ${l.voiceMailbox}@${l.endpointId} <-> ${l.upn ?? l.userId}  linked; first sync queued`, l);
        }),
    },
    {
      name: "export", legacy: "export",
      define: (c) => jsonOption(c.description("the tenant's links as an import CSV (current UPNs), sorted").requiredOption("--tenant <tenantId>", "the customer tenant"))
        .action(async (o: { tenant: string }) => {
          const csv = await (await import("../admin/links.js")).exportLinks(ctx.deps(), o.tenant);
          if (!ctx.json) { ctx.out(csv.replace(/\r\n$/, "")); return; }
          const [, ...rows] = csv.trimEnd().split("\r\n");
          ctx.print("", rows.map((r) => { const [voiceMailbox, endpointId, smtp, profileId] = r.split(","); return { voiceMailbox, endpointId, smtp, profileId }; }));
        }),
    },
    ...(["pause", "resume", "disable"] as const).map((verb): Verb => ({
      name: verb, legacy: verb,
      define: (c) => jsonOption(many(c.description(verb === "pause" ? "stop syncing links for now (a mailbox restore or move, a tenant's maintenance); their subscriptions are removed" : verb === "resume" ? "sync paused or disabled links again (also ends userGone); a run is queued for each" : "switch links off until resumed")
        .argument("[linkIds...]", "the links (or --tenant / --all)")))
        .action(async (ids: string[], o: { tenant?: string; all?: boolean }, cmd: Command) => {
          const state = verb === "pause" ? "paused" : verb === "resume" ? "enabled" : "disabled";
          const links = await selectLinks(ctx, ids, o, usageOf(cmd));
          if (ids.length === 1) {
            const l = await (await import("../admin/links.js")).setLinkState(ctx.deps(), links[0]!, state);
            ctx.print(`${l.linkId} is ${l.state}`, l);
            return;
          }
          const done = await forEachLink(ctx, links, verb === "pause" ? "pausing" : verb === "resume" ? "resuming" : "disabling", async (id) => (await import("../admin/links.js")).setLinkState(ctx.deps(), id, state));
          ctx.print(`${done.length} link(s) ${state}${o.tenant ? ` in tenant ${o.tenant}` : ""}`, { linkIds: done, state });
        }),
    })),
    {
      name: "resync", legacy: "resync",
      define: (c) => jsonOption(many(c.description("a full comparison of both sides (re-matches, never re-copies), for one link, several, or a tenant's")
        .argument("[linkIds...]", "the links")
        .option("--adopt", "also adopt other products' voicemails already in Exchange")
        .option("--dry-run", "with --adopt: show what the first sync would adopt, copy, list as ambiguous, remove")))
        .action(async (ids: string[], o: { adopt?: boolean; dryRun?: boolean; tenant?: string; all?: boolean }, cmd: Command) => {
          if (o.dryRun) return previewMany(ctx, await selectLinks(ctx, ids, o, usageOf(cmd)));
          const links = await selectLinks(ctx, ids, o, usageOf(cmd));
          const done = await forEachLink(ctx, links, o.adopt ? "adopting" : "queueing resync", async (id) => (await import("../admin/links.js")).resync(ctx.deps(), id, { adopt: o.adopt }));
          const extra = o.adopt ? " (adopting other products' voicemails)" : "";
          ctx.print(links.length === 1 ? `${links[0]}: full resync queued${extra}` : `full resync queued for ${done.length} link(s)${extra}`, links.length === 1 && ids.length === 1 ? { linkId: links[0], queued: true, adopt: Boolean(o.adopt) } : { linkIds: done, queued: true, adopt: Boolean(o.adopt) });
        }),
    },
    {
      name: "adopt",
      define: (c) => jsonOption(many(c.description("adopt other products' voicemails already in Exchange (a resync --adopt), for links or a tenant's")
        .argument("[linkIds...]", "the links")
        .option("--dry-run", "show per link what would be adopted, copied, listed as ambiguous, removed; change nothing")))
        .action(async (ids: string[], o: { dryRun?: boolean; tenant?: string; all?: boolean }, cmd: Command) => {
          const links = await selectLinks(ctx, ids, o, usageOf(cmd));
          if (o.dryRun) return previewMany(ctx, links);
          const done = await forEachLink(ctx, links, "adopting", async (id) => (await import("../admin/links.js")).resync(ctx.deps(), id, { adopt: true }));
          ctx.print(`adoption queued for ${done.length} link(s): ${done.join(", ")}`, { linkIds: done, queued: true, adopt: true });
        }),
    },
    {
      name: "verify",
      define: (c) => jsonOption(many(c.description("log in to the voice store for each link and open its INBOX (a test login; a success lifts a lockout stop)")
        .argument("[linkIds...]", "the links (or --tenant / --all)")))
        .action(async (ids: string[], o: { tenant?: string; all?: boolean }, cmd: Command) => {
          const deps = ctx.deps();
          const linkIds = await selectLinks(ctx, ids, o, usageOf(cmd));
          const results: Array<{ linkId: string; ok: boolean; messages?: number; error?: string }> = [];
          const bar = ctx.progress("verifying");
          try {
            for (const [i, id] of linkIds.entries()) {
              const l = await deps.state.getLink(id);
              if (!l) results.push({ linkId: id, ok: false, error: "NOT_FOUND: no such link" });
              else await (await import("../admin/configAdmin.js")).testEndpoint(deps, l.endpointId, l.voiceMailbox).then((r) => results.push({ linkId: id, ok: true, messages: r.messages }), (e: unknown) => results.push({ linkId: id, ok: false, error: `${(e as { code?: string }).code ?? "ERROR"}: ${(e as Error).message}` }));
              bar.update(i + 1, linkIds.length);
            }
          } finally { bar.finish(); }
          const failed = results.filter((r) => !r.ok);
          ctx.print([...results.map((r) => `${r.linkId}  ${r.ok ? `ok (${r.messages} messages)` : `FAILED ${r.error}`}`), `${results.length - failed.length} of ${results.length} link(s) logged in`].join("\n"), results);
          if (failed.length) ctx.exitCode = 1;
        }),
    },
    {
      name: "unlink", legacy: "unlink",
      define: (c) => linkIdArg(jsonOption(c.description("end a link; the voice store is never touched")
        .addOption(new Option("--exchange-copies <what>", "keep the Exchange copies, or remove them (moved to Deleted Items)").choices(["keep", "remove"]).makeOptionMandatory())))
        .action(async (linkId: string, o: { exchangeCopies: "keep" | "remove" }) => {
          const r = await (await import("../admin/lifecycle.js")).unlink(ctx.deps(), linkId, o.exchangeCopies);
          ctx.print(`${linkId} unlinked; Exchange copies ${r.exchangeCopies}${r.removed ? ` (${r.removed} moved to Deleted Items)` : ""}; the voice store is untouched`, r);
        }),
    },
    {
      name: "relink", legacy: "relink",
      define: (c) => linkIdArg(jsonOption(c.description("renumbered or reassigned: change the voice mailbox, store or Exchange user; adopts what is there")
        .option("--voice-mailbox <mailbox>", "the new voice mailbox number")
        .option("--endpoint <endpointId>", "the new voice store")
        .option("--smtp <address>", "the new Exchange user")))
        .action(async (linkId: string, o: { voiceMailbox?: string; endpoint?: string; smtp?: string }, cmd: Command) => {
          if (!o.voiceMailbox && !o.endpoint && !o.smtp) throw new UsageError("nothing to change", `give --voice-mailbox, --endpoint or --smtp: ${usageOf(cmd)}`);
          const l = await (await import("../admin/lifecycle.js")).relink(ctx.deps(), linkId, { voiceMailbox: o.voiceMailbox, endpointId: o.endpoint, smtp: o.smtp });
          ctx.print(`${l.linkId} now links ${l.voiceMailbox}@${l.endpointId} <-> ${l.upn ?? l.userId}; first sync queued (adopting what is already there)`, l);
        }),
    },
    {
      name: "group", legacy: "group-link",
      define: (c) => jsonOption(c.description("link an Entra group's members (joins linked, leavers paused, looked at hourly)")
        .argument("<groupId>", "the Entra group")
        .requiredOption("--tenant <tenantId>", "the customer tenant")
        .requiredOption("--endpoint <endpointId>", "the voice store")
        .option("--profile <profileId>", "feature profile", "default")
        .option("--map <file.csv>", "voiceMailbox,smtp rows: the voice system's mailbox list"))
        .action(async (groupId: string, o: { tenant: string; endpoint: string; profile: string; map?: string }) => {
          const r = await (await import("../admin/groupLinks.js")).bindGroup(ctx.deps(), { tenantId: o.tenant, groupId, endpointId: o.endpoint, profileId: o.profile }, o.map === undefined ? undefined : readCsvArg(o.map));
          ctx.print(`group ${groupId}: ${r.linked.length} linked, ${r.resumed.length} resumed, ${r.paused.length} paused, ${r.unmatched.length} without a voice mailbox${r.unmatched.length ? ` (${r.unmatched.join(", ")})` : ""}; joins and leaves are applied hourly`, r);
        }),
    },
    {
      name: "allow-mass-delete", legacy: "allow-mass-delete",
      define: (c) => linkIdArg(jsonOption(c.description("after checking a stopped mass delete: let the next run apply it, once")
        .addOption(new Option("--kind <kind>", "which sync").choices(["voicemail", "contacts", "calendar"]).default("voicemail"))))
        .action(async (linkId: string, o: { kind: "voicemail" | "contacts" | "calendar" }) => {
          await (await import("../admin/links.js")).allowMassDelete(ctx.deps(), linkId, o.kind);
          ctx.print(`${linkId}: the next ${o.kind} run may apply the stopped deletes (once); run queued`, { linkId, kind: o.kind, allowed: true });
        }),
    },
    {
      name: "conflicts", legacy: "conflicts",
      define: (c) => linkIdArg(jsonOption(c.description("contact edit conflicts (--json shows the losing vCards) and ambiguous adoption matches")))
        .action(async (linkId: string) => {
          const list = await ctx.deps().state.listConflicts(linkId);
          ctx.print(list.map((x) => x.kind !== "contact"
            ? `${x.at}  ${x.summary ?? x.syncKey}`
            : `${x.at}  ${x.summary ?? x.syncKey}  the ${x.loser === "imap" ? "voice store's" : "Exchange"} version lost (kept; --json shows it)`).join("\n") || "(no conflicts)", list);
        }),
    },
    {
      name: "override", legacy: "override",
      define: (c) => linkIdArg(jsonOption(c.description("one user's departures from the profile: show, set (JSON) or --clear"))).argument("[json]", "e.g. '{\"contacts\":{\"enabled\":true}}'")
        .option("--clear", "run the profile as is")
        .action(async (linkId: string, given: string | undefined, o: { clear?: boolean }) => {
          const deps = ctx.deps();
          if (given === undefined && !o.clear) {
            const l = await deps.state.getLink(linkId);
            if (!l) throw new ConnectorError("NOT_FOUND", `no link ${linkId}`);
            ctx.print(l.profileOverride ? `${linkId} (profile ${l.profileId}) overrides: ${JSON.stringify(l.profileOverride)}` : `${linkId} runs profile ${l.profileId} as is`, { linkId, profileId: l.profileId, override: l.profileOverride ?? null });
            return;
          }
          if (given !== undefined && o.clear) throw new UsageError("give an override or --clear, not both", "umconnect link override <linkId> ['<json>' | --clear]");
          let parsed: Record<string, unknown> | undefined;
          if (given !== undefined) {
            try { parsed = JSON.parse(given) as Record<string, unknown>; } catch { throw new ConnectorError("BAD_REQUEST", "the override is not JSON"); }
          }
          const l = await (await import("../admin/links.js")).setProfileOverride(deps, linkId, parsed);
          ctx.print(parsed ? `${linkId}: override set; runs queued` : `${linkId}: override cleared; runs profile ${l.profileId} as is`, { linkId, profileId: l.profileId, override: l.profileOverride ?? null });
        }),
    },
  ];
}

/** A file refused with its problems by line is the input's fault: a usage error (exit 2), nothing changed. */
export function refusedFile(e: unknown, file: string, what: string): unknown {
  if (!isConnectorError(e, "BAD_REQUEST") || !e.problems.length) return e;
  return new UsageError(`${file} refused, nothing was ${what} (${e.problems.length} problem${e.problems.length > 1 ? "s" : ""})`, "fix these lines and run it again", e.problems);
}

function usageOf(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return `usage: ${names.join(" ")} ${cmd.usage()}`;
}

/** Runs `one` for each link with a progress bar; every failure is collected and reported after the rest ran. */
async function forEachLink(ctx: CliContext, linkIds: string[], label: string, one: (linkId: string) => Promise<unknown>): Promise<string[]> {
  const bar = ctx.progress(label);
  const done: string[] = [];
  const failed: string[] = [];
  try {
    for (const [i, id] of linkIds.entries()) {
      await one(id).then(() => done.push(id), (e: unknown) => failed.push(`${id}: ${(e as { code?: string }).code ?? "ERROR"}: ${(e as Error).message}`));
      bar.update(i + 1, linkIds.length);
    }
  } finally { bar.finish(); }
  if (failed.length) throw new ConnectorError("BAD_REQUEST", `${failed.length} of ${linkIds.length} link(s) failed (${done.length} done)`, { problems: failed });
  return done;
}

async function previewMany(ctx: CliContext, linkIds: string[]): Promise<void> {
  const previews: AdoptionPreview[] = [];
  const { adoptionTable, previewAdoption } = await import("../admin/adoption.js");
  await forEachLink(ctx, linkIds, "previewing", async (id) => { previews.push(await previewAdoption(ctx.deps(), id)); });
  if (previews.length === 1) ctx.print(adoptionTable(previews[0]!), previews[0]);
  else ctx.print(previews.map((p) => `${p.linkId}\n${adoptionTable(p)}`).join("\n\n"), previews);
}
