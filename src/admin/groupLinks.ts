/**
 * Automatic linking from an Entra group: the group's members delta
 * (https://learn.microsoft.com/en-us/graph/api/group-delta, `members@delta`) tells who joined
 * and who left since the last look. A member who joins is linked: their SMTP proxy addresses
 * are looked up in the voice store's mailbox list (`umconnect group-link ... --map`, rows
 * voiceMailbox,smtp, the export of the voice system's mailbox list or an admin's CSV map); a
 * member who leaves has their link paused (not removed: rejoining resumes it, nothing is
 * copied twice). Bindings are kept in state and looked at again by the reconcile timer.
 */
import crypto from "node:crypto";
import { ConnectorError, isConnectorError } from "../errors.js";
import type { Deps } from "../app/deps.js";
import { enqueueLinkKinds } from "../app/schedule.js";
import type { GroupBinding } from "../state/stateStore.js";
import { setLinkState } from "./links.js";
import { readCsvTable } from "./csv.js";

export interface GroupRunResult { groupId: string; linked: string[]; resumed: string[]; paused: string[]; unmatched: string[] }

/** Reads `voiceMailbox,smtp` rows (header line first). */
export function readMailboxMap(text: string): { rows: Array<{ voiceMailbox: string; smtp: string }>; problems: string[] } {
  const table = readCsvTable(text, ["voiceMailbox", "smtp"]);
  const rows: Array<{ voiceMailbox: string; smtp: string }> = [];
  const problems = [...table.problems];
  table.rows.forEach(({ line, cells }) => {
    const [voiceMailbox = "", smtp = ""] = cells.map((c) => c.trim());
    if (!/^[A-Za-z0-9._@+-]{1,128}$/.test(voiceMailbox) || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(smtp)) problems.push(`line ${line}: expected voiceMailbox,smtp`);
    else rows.push({ voiceMailbox, smtp: smtp.toLowerCase() });
  });
  return { rows, problems };
}

/** Binds a group (and stores the mailbox list), then runs it once. */
export async function bindGroup(deps: Deps, b: Omit<GroupBinding, "deltaLink">, mapCsv: string | undefined): Promise<GroupRunResult> {
  if (!(await deps.state.getTenant(b.tenantId))) throw new ConnectorError("BAD_REQUEST", `tenant ${b.tenantId} is not connected`);
  const dir = await deps.directory();
  dir.endpoint(b.endpointId);
  dir.profile(b.profileId);
  if (mapCsv !== undefined) {
    const { rows, problems } = readMailboxMap(mapCsv);
    if (problems.length) throw new ConnectorError("BAD_REQUEST", "mailbox map refused, nothing changed", { problems });
    await deps.state.putMailboxMap(b.endpointId, rows);
  }
  const existing = (await deps.state.listGroupBindings()).find((x) => x.tenantId === b.tenantId && x.groupId === b.groupId);
  await deps.state.putGroupBinding({ ...b, deltaLink: existing?.deltaLink });
  return runGroup(deps, { ...b, deltaLink: existing?.deltaLink });
}

/** Every bound group (reconcile timer). */
export async function runGroupBindings(deps: Deps): Promise<GroupRunResult[]> {
  const out: GroupRunResult[] = [];
  for (const b of await deps.state.listGroupBindings()) {
    try { out.push(await runGroup(deps, b)); } catch (e) { deps.log.error("group.links.failed", { tenantId: b.tenantId, groupId: b.groupId, error: e }); }
  }
  return out;
}

export async function runGroup(deps: Deps, b: GroupBinding): Promise<GroupRunResult> {
  const graph = deps.graph(b.tenantId);
  const result: GroupRunResult = { groupId: b.groupId, linked: [], resumed: [], paused: [], unmatched: [] };
  const joined = new Set<string>();
  const left = new Set<string>();
  let url: string | undefined = b.deltaLink ?? `/groups/delta?$filter=${encodeURIComponent(`id eq '${b.groupId}'`)}&$select=members`;
  let deltaLink: string | undefined;
  while (url) {
    let page: { value: Array<{ id: string; "members@delta"?: Array<{ "@odata.type"?: string; id: string; "@removed"?: unknown }> }>; "@odata.nextLink"?: string; "@odata.deltaLink"?: string };
    try {
      page = await graph.request({ method: "GET", url });
    } catch (e) {
      // An expired token: start over with the full member list (joins are idempotent).
      if (isConnectorError(e, "DELTA_TOKEN_EXPIRED") && b.deltaLink && url === b.deltaLink) { url = `/groups/delta?$filter=${encodeURIComponent(`id eq '${b.groupId}'`)}&$select=members`; continue; }
      throw e;
    }
    for (const g of page.value) for (const m of g["members@delta"] ?? []) {
      if (m["@odata.type"] && m["@odata.type"] !== "#microsoft.graph.user") continue; // nested groups, devices: not people
      if (m["@removed"]) { left.add(m.id); joined.delete(m.id); } else { joined.add(m.id); left.delete(m.id); }
    }
    url = page["@odata.nextLink"];
    deltaLink = page["@odata.deltaLink"] ?? deltaLink;
  }
  for (const userId of joined) {
    const existing = await deps.state.findLinkByUser(b.tenantId, userId);
    if (existing) {
      if (existing.state === "paused") { await setLinkState(deps, existing.linkId, "enabled"); result.resumed.push(existing.linkId); }
      continue;
    }
    let user: { userPrincipalName: string; proxyAddresses?: string[]; mail?: string };
    try {
      user = await graph.request({ method: "GET", url: `/users/${encodeURIComponent(userId)}?$select=userPrincipalName,proxyAddresses,mail` });
    } catch (e) {
      if (isConnectorError(e, "UNKNOWN_USER") || isConnectorError(e, "GRAPH_NOT_FOUND")) { result.unmatched.push(userId); continue; }
      throw e;
    }
    // SMTP proxy addresses (primary "SMTP:", secondary "smtp:"), then mail.
    const smtps = [...(user.proxyAddresses ?? []).filter((a) => /^smtp:/i.test(a)).map((a) => a.slice(5).toLowerCase()), ...(user.mail ? [user.mail.toLowerCase()] : [])];
    let voiceMailbox: string | undefined;
    for (const a of smtps) if ((voiceMailbox = await deps.state.lookupMailboxMap(b.endpointId, a))) break;
    if (!voiceMailbox || (await deps.state.findLinkByVoice(b.endpointId, voiceMailbox))) { result.unmatched.push(user.userPrincipalName); continue; }
    const link = await deps.state.createLink({ linkId: `L-${crypto.randomUUID()}`, tenantId: b.tenantId, endpointId: b.endpointId, voiceMailbox, userId, upn: user.userPrincipalName, profileId: b.profileId, state: "enabled" });
    await enqueueLinkKinds(deps, link, "admin");
    result.linked.push(link.linkId);
  }
  for (const userId of left) {
    const l = await deps.state.findLinkByUser(b.tenantId, userId);
    if (l && l.state === "enabled") { await setLinkState(deps, l.linkId, "paused"); result.paused.push(l.linkId); }
  }
  await deps.state.putGroupBinding({ ...b, deltaLink });
  deps.log.info("group.links.done", { tenantId: b.tenantId, groupId: b.groupId, linked: result.linked.length, resumed: result.resumed.length, paused: result.paused.length, unmatched: result.unmatched.length });
  return result;
}
