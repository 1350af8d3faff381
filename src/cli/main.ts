#!/usr/bin/env node
/**
 * `umconnect`: the administrator's command line. Reads the same UMC_* settings as the app.
 *
 *   umconnect tenants
 *   umconnect links [--tenant T]
 *   umconnect status [--tenant T]
 *   umconnect import <file.csv> --tenant T [--paused]  (voiceMailbox,endpointId,smtp,profileId; --paused: dry-run adoption first)
 *   umconnect link <voiceMailbox> --endpoint E --smtp S [--profile P] --tenant T
 *   umconnect export --tenant T
 *   umconnect pause|resume|disable <linkId>
 *   umconnect resync <linkId> [--adopt] [--dry-run] (full comparison; --adopt: adopt other products' voicemails)
 *   umconnect unlink <linkId> --exchange-copies keep|remove
 *   umconnect group-link <groupId> --tenant T --endpoint E [--profile P] [--map voice-mailboxes.csv]  (members linked; leavers paused)
 *   umconnect relink <linkId> [--voice-mailbox M] [--endpoint E] [--smtp S]  (renumber or new user; adopts)
 *   umconnect allow-mass-delete <linkId> [--kind voicemail|contacts|calendar]
 *   umconnect conflicts <linkId>                (losing versions of contact edit/edit conflicts)
 *   umconnect override <linkId> ['<json>' | --clear]  (one user's departures from the profile)
 *   umconnect endpoints | profiles              (configuration as loaded; no secrets)
 *   umconnect endpoint set <endpoint.json> | remove <id> | test <id> --mailbox M
 *   umconnect endpoint rotate-secret <id> [--overlap-hours H]   (new signing secret; the old one stays valid H hours, default 24)
 *   umconnect profile set <profile.json> | remove <id>
 *   umconnect subscriptions --audit [--tenant T] [--dry-run]  (Graph's subscriptions per mailbox; removes orphans and duplicates)
 *   umconnect credentials set|rotate <linkId> --password-prompt      (a link's own password)
 *   umconnect credentials rotate --endpoint <id> --password-prompt [--mailbox M]
 *   umconnect credentials import <file.csv>      (voiceMailbox,endpointId,password; into Key Vault)
 *   umconnect credentials                        (credentials stopped after a rejection)
 *   umconnect trace <linkId> | --endpoint <id> [--minutes 10]   (IMAP protocol lines to the log, redacted)
 * Add --json for machine-readable output.
 */
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { getConfig } from "../config.js";
import { buildDeps, workstationCredential } from "../app/deps.js";
import { createLogger } from "../log.js";
import { isConnectorError } from "../errors.js";
import { removeEndpoint, removeProfile, rotateSigningSecret, setEndpoint, setProfile, testEndpoint } from "../admin/configAdmin.js";
import { auditSubscriptions, formatAudit } from "../admin/subscriptionAudit.js";
import { allowMassDelete, exportLinks, importLinks, linkMailbox, resync, setLinkState, setProfileOverride } from "../admin/links.js";
import { credentialsCommand } from "./credentialsCommand.js";
import { relink, unlink } from "../admin/lifecycle.js";
import { adoptionTable, previewAdoption } from "../admin/adoption.js";
import { bindGroup } from "../admin/groupLinks.js";
import { startTrace } from "../app/protocolTrace.js";

export async function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s + "\n"), err: (s: string) => void = (s) => process.stderr.write(s + "\n"), password?: () => Promise<string>): Promise<number> {
  const json = argv.includes("--json");
  const flags = new Set(["--json", "--adopt", "--dry-run", "--clear", "--paused"]);
  const flag = (name: string) => argv.includes(`--${name}`);
  const args = argv.filter((a) => a !== "--json");
  const opt = (name: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : undefined; };
  const [cmd, arg] = args.filter((a, i) => !a.startsWith("--") && !(args[i - 1]?.startsWith("--") && !flags.has(args[i - 1]!)));
  const print = (human: string, data: unknown) => out(json ? JSON.stringify(data, null, 2) : human);
  try {
    // Storage by service URI (Azure): the operator's own Entra sign-in (az login), not keys.
    const config = getConfig();
    const deps = buildDeps(config, createLogger({ level: "error" }), config.storage.connectionString ? {} : { credential: workstationCredential(config.identity.managedIdentityClientId) });
    switch (cmd) {
      case "tenants": {
        const t = await deps.state.listTenants();
        print(t.map((x) => `${x.tenantId}  ${x.status}  consented ${x.consentedAt ?? "-"}  ${x.grantedRoles.join(",")}`).join("\n") || "(no tenants)", t);
        return 0;
      }
      case "links": case "status": {
        const links = await deps.state.listLinks({ tenantId: opt("tenant") });
        print(links.map((l) => cmd === "links"
          ? `${l.linkId}  ${l.voiceMailbox}@${l.endpointId} <-> ${l.upn ?? l.userId}  ${l.state}  profile ${l.profileId}${l.profileOverride ? " + override" : ""}`
          : `${l.linkId}  ${l.state}  last sync ${l.lastSyncAt ?? "never"}  unread ${l.unreadVoice}${l.lastError ? `  ERROR ${l.lastError.code}: ${l.lastError.message}` : ""}`).join("\n") || "(no links)", links);
        return 0;
      }
      case "import": {
        const tenant = opt("tenant");
        if (!arg || !tenant) { err("usage: umconnect import <file.csv> --tenant <tenant id>"); return 2; }
        const r = await importLinks(deps, tenant, fs.readFileSync(arg, "utf8"), (done, total) => { if (!json) process.stderr.write(`\r${done}/${total}`); }, { paused: flag("paused") });
        if (!json) process.stderr.write("\n");
        print(`imported ${r.created.length} links`, r.created);
        return 0;
      }
      case "link": {
        // `umconnect link <linkId> --password-prompt` is `credentials set <linkId> --password-prompt`.
        if (args.includes("--password-prompt")) {
          const rest = args.slice(1).filter((a, i, all) => !a.startsWith("--") && !all[i - 1]?.startsWith("--"));
          return await credentialsCommand(deps, ["set", ...rest], { opt, has: (n) => args.includes(`--${n}`), print, err, password });
        }
        const [tenant, endpointId, smtp] = [opt("tenant"), opt("endpoint"), opt("smtp")];
        if (!arg || !tenant || !endpointId || !smtp) { err("usage: umconnect link <voiceMailbox> --endpoint <endpoint id> --smtp <address> [--profile <profile id>] --tenant <tenant id>"); return 2; }
        const l = await linkMailbox(deps, tenant, { voiceMailbox: arg, endpointId, smtp, profileId: opt("profile") });
        print(`${l.linkId}  ${l.voiceMailbox}@${l.endpointId} <-> ${l.upn ?? l.userId}  linked; first sync queued`, l);
        return 0;
      }
      case "export": {
        const tenant = opt("tenant");
        if (!tenant) { err("usage: umconnect export --tenant <tenant id>"); return 2; }
        out(await exportLinks(deps, tenant));
        return 0;
      }
      case "pause": case "resume": case "disable": {
        if (!arg) { err(`usage: umconnect ${cmd} <linkId>`); return 2; }
        const l = await setLinkState(deps, arg, cmd === "pause" ? "paused" : cmd === "resume" ? "enabled" : "disabled");
        print(`${l.linkId} is ${l.state}`, l);
        return 0;
      }
      case "resync": {
        if (!arg) { err("usage: umconnect resync <linkId> [--adopt] [--dry-run]"); return 2; }
        if (flag("dry-run")) {
          const p = await previewAdoption(deps, arg);
          print(adoptionTable(p), p);
          return 0;
        }
        await resync(deps, arg, { adopt: flag("adopt") });
        print(`${arg}: full resync queued${flag("adopt") ? " (adopting other products' voicemails)" : ""}`, { linkId: arg, queued: true, adopt: flag("adopt") });
        return 0;
      }
      case "group-link": {
        const tenant = opt("tenant");
        const endpoint = opt("endpoint");
        if (!arg || !tenant || !endpoint) { err("usage: umconnect group-link <groupId> --tenant T --endpoint E [--profile P] [--map voice-mailboxes.csv]"); return 2; }
        const map = opt("map");
        const r = await bindGroup(deps, { tenantId: tenant, groupId: arg, endpointId: endpoint, profileId: opt("profile") ?? "default" }, map === undefined ? undefined : fs.readFileSync(map, "utf8"));
        print(`group ${arg}: ${r.linked.length} linked, ${r.resumed.length} resumed, ${r.paused.length} paused, ${r.unmatched.length} without a voice mailbox${r.unmatched.length ? ` (${r.unmatched.join(", ")})` : ""}; joins and leaves are applied hourly`, r);
        return 0;
      }
      case "unlink": {
        const copies = opt("exchange-copies");
        if (!arg || (copies !== "keep" && copies !== "remove")) { err("usage: umconnect unlink <linkId> --exchange-copies keep|remove"); return 2; }
        const r = await unlink(deps, arg, copies);
        print(`${arg} unlinked; Exchange copies ${r.exchangeCopies}${r.removed ? ` (${r.removed} moved to Deleted Items)` : ""}; the voice store is untouched`, r);
        return 0;
      }
      case "relink": {
        const change = { voiceMailbox: opt("voice-mailbox"), endpointId: opt("endpoint"), smtp: opt("smtp") };
        if (!arg || (!change.voiceMailbox && !change.endpointId && !change.smtp)) { err("usage: umconnect relink <linkId> [--voice-mailbox M] [--endpoint E] [--smtp S]"); return 2; }
        const l = await relink(deps, arg, change);
        print(`${l.linkId} now links ${l.voiceMailbox}@${l.endpointId} <-> ${l.upn ?? l.userId}; first sync queued (adopting what is already there)`, l);
        return 0;
      }
      case "allow-mass-delete": {
        const kind = opt("kind") ?? "voicemail";
        if (!arg || !["voicemail", "contacts", "calendar"].includes(kind)) { err("usage: umconnect allow-mass-delete <linkId> [--kind voicemail|contacts|calendar]"); return 2; }
        await allowMassDelete(deps, arg, kind as "voicemail");
        print(`${arg}: the next ${kind} run may apply the stopped deletes (once); run queued`, { linkId: arg, kind, allowed: true });
        return 0;
      }
      case "override": {
        if (!arg) { err("usage: umconnect override <linkId> ['<json>' | --clear]"); return 2; }
        const given = args.filter((a) => !a.startsWith("--"))[2];
        if (given === undefined && !args.includes("--clear")) {
          const l = await deps.state.getLink(arg);
          if (!l) { err(`NOT_FOUND: no link ${arg}`); return 1; }
          print(l.profileOverride ? `${arg} (profile ${l.profileId}) overrides: ${JSON.stringify(l.profileOverride)}` : `${arg} runs profile ${l.profileId} as is`, { linkId: arg, profileId: l.profileId, override: l.profileOverride ?? null });
          return 0;
        }
        let parsed: Record<string, unknown> | undefined;
        if (given !== undefined) {
          try { parsed = JSON.parse(given) as Record<string, unknown>; } catch { err("BAD_REQUEST: the override is not JSON"); return 1; }
        }
        const l = await setProfileOverride(deps, arg, parsed);
        print(parsed ? `${arg}: override set; runs queued` : `${arg}: override cleared; runs profile ${l.profileId} as is`, { linkId: arg, profileId: l.profileId, override: l.profileOverride ?? null });
        return 0;
      }
      case "conflicts": {
        if (!arg) { err("usage: umconnect conflicts <linkId>"); return 2; }
        const c = await deps.state.listConflicts(arg);
        print(c.map((x) => x.kind !== "contact"
          ? `${x.at}  ${x.summary ?? x.syncKey}`
          : `${x.at}  ${x.summary ?? x.syncKey}  the ${x.loser === "imap" ? "voice store's" : "Exchange"} version lost (kept; --json shows it)`).join("\n") || "(no conflicts)", c);
        return 0;
      }
      case "endpoint": case "profile": {
        const [, sub, target] = args.filter((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"));
        const usage = cmd === "endpoint" ? "usage: umconnect endpoint set <endpoint.json> | remove <id> | test <id> --mailbox <voice mailbox> | rotate-secret <id> [--overlap-hours H]" : "usage: umconnect profile set <profile.json> | remove <id>";
        if (!target || !["set", "remove", ...(cmd === "endpoint" ? ["test", "rotate-secret"] : [])].includes(sub ?? "")) { err(usage); return 2; }
        if (sub === "rotate-secret") {
          const hours = opt("overlap-hours");
          if (hours !== undefined && !/^\d{1,4}(\.\d+)?$/.test(hours)) { err(usage); return 2; }
          const r = await rotateSigningSecret(deps, target, hours === undefined ? undefined : Math.round(Number(hours) * 3600));
          // The new secret is shown once, for the voice system's configuration; it is not logged.
          print(`${target}: new signing secret in ${r.secretName} (running instances use it within a minute)${r.previousUntil ? `; the previous one is accepted until ${r.previousUntil}` : ""}\nconfigure the voice system with: ${r.secret}`, { endpoint: target, ...r });
          return 0;
        }
        if (sub === "set") {
          let input: unknown;
          try { input = JSON.parse(fs.readFileSync(target, "utf8")); } catch { err(`BAD_REQUEST: ${target} is not a readable JSON file`); return 1; }
          const id = cmd === "endpoint" ? (await setEndpoint(deps, input as never), (input as { id: string }).id) : await setProfile(deps, input);
          print(`${cmd} ${id} saved; running instances pick it up within a minute`, { [cmd]: id, saved: true });
        } else if (sub === "remove") {
          await (cmd === "endpoint" ? removeEndpoint(deps, target) : removeProfile(deps, target));
          print(`${cmd} ${target} removed`, { [cmd]: target, removed: true });
        } else {
          const mailbox = opt("mailbox");
          if (!mailbox) { err(usage); return 2; }
          const r = await testEndpoint(deps, target, mailbox);
          print(`${target}: logged in for ${mailbox} and opened INBOX (${r.messages} messages)`, { endpoint: target, mailbox, ok: true, ...r });
        }
        return 0;
      }
      case "subscriptions": {
        if (!args.includes("--audit")) { err("usage: umconnect subscriptions --audit [--tenant T] [--dry-run]"); return 2; }
        const rows = await auditSubscriptions(deps, { remove: !args.includes("--dry-run"), tenantId: opt("tenant") });
        print(formatAudit(rows), rows);
        return 0;
      }
      case "credentials": {
        const rest = args.slice(1).filter((a, i, all) => !a.startsWith("--") && !all[i - 1]?.startsWith("--"));
        return await credentialsCommand(deps, rest, { opt, has: (n) => args.includes(`--${n}`), print, err, password });
      }
      case "trace": {
        const minutes = Number(opt("minutes") ?? "10");
        const endpoint = opt("endpoint");
        if (!arg && !endpoint) { err("usage: umconnect trace <linkId> | --endpoint <id>  [--minutes 10]"); return 2; }
        const r = await startTrace(deps, endpoint ? { kind: "endpoint", endpointId: endpoint } : { kind: "link", linkId: arg! }, minutes);
        print(`IMAP protocol trace on until ${r.until} (log event imap.trace; credentials and contents redacted)`, r);
        return 0;
      }
      case "endpoints": {
        const e = (await deps.directory()).listEndpoints();
        print(e.map((x) => `${x.id}  ${x.host}:${x.port}  tls ${x.tls}  auth ${x.auth}${x.passwordSecret ? ` (secret ${x.passwordSecret})` : ""}  max ${x.maxConnections} connections  ${x.source}  owner ${x.owner}  signing ${x.signing}${x.locationCallbackUrl ? `  location callback ${x.locationCallbackUrl}` : ""}${x.refused ? `  REFUSED: ${x.refused}` : ""}`).join("\n") || "(no endpoints)", e);
        return 0;
      }
      case "profiles": {
        const p = (await deps.directory()).listProfiles();
        print(p.map((x) => `${x.id}  ${x.displayName}: voice${x.copy.fax ? "+fax" : ""} -> ${x.exchangeFolder}${x.contacts.enabled ? ", contacts" : ""}${x.calendar.enabled ? `, calendar ${x.calendar.pastDays}/${x.calendar.futureDays} days${x.calendar.changeLocation.enabled ? `, location "${x.calendar.changeLocation.text}"` : ""}` : ""}`).join("\n"), p);
        return 0;
      }
      default:
        err("usage: umconnect tenants | links | status | import <csv> --tenant T | link <voiceMailbox> --endpoint E --smtp S [--profile P] --tenant T | link <linkId> --password-prompt | export --tenant T | pause|resume|disable <linkId> | resync <linkId> [--adopt] [--dry-run] | unlink <linkId> --exchange-copies keep|remove | relink <linkId> [--voice-mailbox M] [--endpoint E] [--smtp S] | group-link <groupId> --tenant T --endpoint E [--profile P] [--map csv] | allow-mass-delete <linkId> [--kind K] | override <linkId> ['<json>' | --clear] | conflicts <linkId> | endpoints | profiles | endpoint set|remove|test|rotate-secret | profile set|remove | subscriptions --audit [--dry-run] | credentials [set|rotate|import] [--json]");
        return 2;
    }
  } catch (e) {
    if (isConnectorError(e)) {
      const hint = accessHint(e);
      err(json ? JSON.stringify({ ...e.toJSON(), ...(hint ? { hint } : {}) }) : `${e.code}: ${e.message}${e.problems.length ? "\n  " + e.problems.join("\n  ") : ""}${hint ? `\n  ${hint}` : ""}`);
      return 1;
    }
    throw e;
  }
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
