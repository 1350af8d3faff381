/**
 * Mailbox linking for administrators: CSV import/export, one link at a time, pause, resume,
 * resync. A CSV import is all-or-nothing: every row is checked first (syntax, endpoint,
 * profile, the Exchange user found by SMTP address through Graph, one-to-one on both sides),
 * every problem is reported with its line number, and links are written only when there are
 * none.
 */
import crypto from "node:crypto";
import { ConnectorError, isConnectorError } from "../errors.js";
import type { Deps } from "../app/deps.js";
import { enqueueLinkKinds } from "../app/schedule.js";
import type { MailboxLink } from "../state/stateStore.js";
import { overrideProblems } from "./profiles.js";
import { boundaryProblems } from "../security/tenantBoundary.js";
import { dropLinkSubscriptions } from "../app/userLifecycle.js";
import { currentUpns } from "./lifecycle.js";
import { byLine, readCsvTable } from "./csv.js";

export const CSV_HEADER = ["voiceMailbox", "endpointId", "smtp", "profileId"] as const;
export type LinkRow = { line: number; voiceMailbox: string; endpointId: string; smtp: string; profileId: string };

export function readLinkCsv(text: string): { rows: LinkRow[]; problems: string[] } {
  const table = readCsvTable(text, CSV_HEADER);
  const problems = [...table.problems];
  const rows: LinkRow[] = [];
  table.rows.forEach(({ line, cells }) => {
    const [voiceMailbox, endpointId, smtp, profileId] = cells.map((c) => c.trim()) as [string, string, string, string];
    if (!/^[A-Za-z0-9._@+-]{1,128}$/.test(voiceMailbox)) problems.push(`line ${line}: voice mailbox "${voiceMailbox}" is not valid`);
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(smtp)) problems.push(`line ${line}: "${smtp}" is not an SMTP address`);
    rows.push({ line, voiceMailbox, endpointId, smtp: smtp.toLowerCase(), profileId: profileId || "default" });
  });
  const seenVoice = new Map<string, number>();
  const seenSmtp = new Map<string, number>();
  for (const r of rows) {
    const vk = `${r.endpointId}|${r.voiceMailbox.toLowerCase()}`;
    if (seenVoice.has(vk)) problems.push(`line ${r.line}: voice mailbox ${r.voiceMailbox} is already on line ${seenVoice.get(vk)}`);
    else seenVoice.set(vk, r.line);
    if (seenSmtp.has(r.smtp)) problems.push(`line ${r.line}: ${r.smtp} is already on line ${seenSmtp.get(r.smtp)}`);
    else seenSmtp.set(r.smtp, r.line);
  }
  return { rows, problems: byLine(problems) };
}

/** Finds the Exchange user by SMTP proxy address (https://learn.microsoft.com/en-us/graph/aad-advanced-queries). */
export async function findUserBySmtp(deps: Deps, tenantId: string, smtp: string): Promise<{ id: string; userPrincipalName: string } | undefined> {
  const filter = `proxyAddresses/any(x:x eq 'smtp:${smtp.replace(/'/g, "''")}')`;
  const r = await deps.graph(tenantId).request<{ value: Array<{ id: string; userPrincipalName: string }> }>({ method: "GET", url: `/users?$filter=${encodeURIComponent(filter)}&$select=id,userPrincipalName` });
  return r.value[0];
}

export interface ImportResult {
  created: MailboxLink[];
  /** What would be (or was) linked: each row with the Exchange user it resolved to. */
  planned: Array<{ line: number; voiceMailbox: string; endpointId: string; smtp: string; upn: string; userId: string; profileId: string }>;
}

/**
 * `paused`: the links wait (e.g. for `umconnect link resync <linkId> --adopt --dry-run`) until
 * resumed. `dryRun`: every check, then nothing is written (`planned` says what would be linked).
 */
export async function importLinks(deps: Deps, tenantId: string, csv: string, onProgress: (done: number, total: number) => void = () => undefined, options: { paused?: boolean; dryRun?: boolean } = {}): Promise<ImportResult> {
  const { rows, problems } = readLinkCsv(csv);
  if (!(await deps.state.getTenant(tenantId))) problems.unshift(`tenant ${tenantId} is not connected (no admin consent recorded)`);
  const dir = await deps.directory();
  const resolved: Array<LinkRow & { userId: string; upn: string }> = [];
  let checked = 0;
  for (const r of rows) {
    try { dir.endpoint(r.endpointId); } catch { problems.push(`line ${r.line}: unknown voice-store endpoint ${r.endpointId}`); }
    try { dir.profile(r.profileId); } catch { problems.push(`line ${r.line}: unknown feature profile ${r.profileId}`); }
    // A link may only use its own tenant's (or a shared) store and profile.
    for (const p of boundaryProblems(dir, tenantId, r)) problems.push(`line ${r.line}: ${p}`);
    const user = await findUserBySmtp(deps, tenantId, r.smtp).catch((e) => { problems.push(`line ${r.line}: looking up ${r.smtp} failed (${isConnectorError(e) ? e.code : "error"})`); return undefined; });
    if (user === undefined) { if (!problems.some((p) => p.startsWith(`line ${r.line}: looking up`))) problems.push(`line ${r.line}: no Exchange user has the address ${r.smtp}`); }
    else {
      if (await deps.state.findLinkByUser(tenantId, user.id)) problems.push(`line ${r.line}: ${r.smtp} is already linked`);
      if (await deps.state.findLinkByVoice(r.endpointId, r.voiceMailbox)) problems.push(`line ${r.line}: voice mailbox ${r.voiceMailbox} is already linked`);
      resolved.push({ ...r, userId: user.id, upn: user.userPrincipalName });
    }
    onProgress(++checked, rows.length * 2);
  }
  if (problems.length) throw new ConnectorError("BAD_REQUEST", `import refused, nothing was imported (${problems.length} problem${problems.length > 1 ? "s" : ""})`, { problems: byLine(problems) });
  const planned = resolved.map(({ line, voiceMailbox, endpointId, smtp, upn, userId, profileId }) => ({ line, voiceMailbox, endpointId, smtp, upn, userId, profileId }));
  if (options.dryRun) { onProgress(rows.length * 2, rows.length * 2); return { created: [], planned }; }
  const created: MailboxLink[] = [];
  for (const r of resolved) {
    created.push(await deps.state.createLink({ linkId: `L-${crypto.randomUUID()}`, tenantId, endpointId: r.endpointId, voiceMailbox: r.voiceMailbox, userId: r.userId, upn: r.upn, profileId: r.profileId, state: options.paused ? "paused" : "enabled" }));
    if (!options.paused) await enqueueLinkKinds(deps, created.at(-1)!, "admin");
    onProgress(rows.length + created.length, rows.length * 2);
  }
  return { created, planned };
}

/** `umconnect link`: one mailbox, with exactly the checks of an import. */
export async function linkMailbox(deps: Deps, tenantId: string, row: { voiceMailbox: string; endpointId: string; smtp: string; profileId?: string }): Promise<MailboxLink> {
  const csv = [CSV_HEADER.join(","), [row.voiceMailbox, row.endpointId, row.smtp, row.profileId ?? "default"].map(csvField).join(",")].join("\r\n");
  return (await importLinks(deps, tenantId, csv)).created[0]!;
}

const csvField = (s: string) => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

export async function exportLinks(deps: Deps, tenantId: string): Promise<string> {
  // Sorted, so exports diff cleanly from one day to the next.
  const links = (await deps.state.listLinks({ tenantId })).sort((a, b) => a.endpointId.localeCompare(b.endpointId) || a.voiceMailbox.localeCompare(b.voiceMailbox, undefined, { numeric: true }));
  // The user's UPN as Entra ID has it now (renames), not as it was at import.
  const upns = await currentUpns(deps, links);
  return [CSV_HEADER.join(","), ...links.map((l) => [l.voiceMailbox, l.endpointId, upns.get(l.linkId) ?? l.upn ?? l.userId, l.profileId].map(csvField).join(","))].join("\r\n") + "\r\n";
}

/** Pause (mailbox restore or move), resume, or disable a link; resume and resync enqueue a run. */
export async function setLinkState(deps: Deps, linkId: string, state: MailboxLink["state"]): Promise<MailboxLink> {
  // Resume also ends "userGone" (the admin restored the user); the next run shows whether it is back.
  const l = await deps.state.modifyLink(linkId, (x) => ({ ...x, state, userGone: state === "enabled" ? undefined : x.userGone }));
  if (state === "enabled") await enqueueLinkKinds(deps, l, "admin");
  // A link that does not run keeps no Graph subscriptions (deleted, not renewed).
  else await dropLinkSubscriptions(deps, l);
  return l;
}

/** A full comparison of both sides (re-matches by sync key, never re-copies); `adopt`: also adopt other products' voicemails. */
export async function resync(deps: Deps, linkId: string, options: { adopt?: boolean } = {}): Promise<void> {
  const link = options.adopt ? await deps.state.modifyLink(linkId, (l) => ({ ...l, adoptRequested: new Date().toISOString() })).catch((e) => { if (isConnectorError(e, "NOT_FOUND")) return undefined; throw e; }) : await deps.state.getLink(linkId);
  if (!link) throw new ConnectorError("NOT_FOUND", `no link ${linkId}`);
  await enqueueLinkKinds(deps, link, "reconcile");
}

/**
 * An administrator confirms that a mass delete the guard stopped is intended (a mailbox
 * really was cleaned out): the next run of that kind applies it, once. The permission is
 * recorded with its time on the link and cleared by the run that used it.
 */
export async function allowMassDelete(deps: Deps, linkId: string, kind: "voicemail" | "contacts" | "calendar"): Promise<MailboxLink> {
  const l = await deps.state.modifyLink(linkId, (x) => ({ ...x, massDeleteAllowed: { ...x.massDeleteAllowed, [kind]: new Date().toISOString() } }));
  deps.log.warn("admin.massDelete.allowed", { linkId, kind });
  await enqueueLinkKinds(deps, l, "admin", [kind]);
  return l;
}

/**
 * Sets (or with `undefined` clears) one user's departures from the link's feature profile,
 * e.g. `{ "contacts": { "enabled": true } }`. Stored as given, so the profile's own settings
 * show through everywhere the override says nothing; refused with every problem listed when a
 * setting is unknown or the result is not a valid profile. Runs of every kind are queued, so a
 * kind the override turns on starts at once.
 */
export async function setProfileOverride(deps: Deps, linkId: string, override: Record<string, unknown> | undefined): Promise<MailboxLink> {
  const link = await deps.state.getLink(linkId);
  if (!link) throw new ConnectorError("NOT_FOUND", `no link ${linkId}`, { mailboxId: linkId });
  if (override !== undefined) {
    const problems = overrideProblems((await deps.directory()).profile(link.profileId), override);
    if (problems.length) throw new ConnectorError("BAD_REQUEST", `invalid override for ${linkId}`, { problems, mailboxId: linkId });
  }
  const l = await deps.state.modifyLink(linkId, (x) => ({ ...x, profileOverride: override }));
  deps.log.info("admin.override.set", { linkId, settings: override ? Object.keys(override) : [] });
  await enqueueLinkKinds(deps, l, "admin");
  return l;
}
