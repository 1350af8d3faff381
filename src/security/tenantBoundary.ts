/**
 * The tenant boundary (issue 12, point 1): a link of tenant T may only use an endpoint and a
 * profile that T owns or that the operator marked shared. Checked when a link is made (CSV
 * import, `umconnect link`), when an endpoint or profile changes owner, and again at the start
 * of every run (defence in depth: a run never opens another tenant's store, whatever put the
 * link row there).
 */
import { ConnectorError } from "../errors.js";
import { ownerText, type Directory, type Owner } from "../app/endpoints.js";

export function usableBy(owner: Owner, tenantId: string): boolean {
  return owner !== undefined && ("shared" in owner || owner.tenantId === tenantId.toLowerCase());
}

/** Every reason tenant `tenantId` may not use this endpoint and profile (empty: it may). */
export function boundaryProblems(dir: Directory, tenantId: string, ids: { endpointId: string; profileId: string }): string[] {
  const out: string[] = [];
  for (const [kind, id] of [["endpoint", ids.endpointId], ["profile", ids.profileId]] as const) {
    if (!dir.has(kind, id)) continue; // unknown ids are reported by their own check
    const owner = dir.owner(kind, id);
    if (usableBy(owner, tenantId)) continue;
    out.push(owner === undefined
      ? `${kind} ${id} has no owner yet: the operator assigns one (tenantId, or shared: true) with umconnect ${kind} set`
      : `${kind} ${id} belongs to ${ownerText(owner)}, not to tenant ${tenantId}`);
  }
  return out;
}

export function assertWithinTenant(dir: Directory, link: { linkId?: string; tenantId: string; endpointId: string; profileId: string }): void {
  const problems = boundaryProblems(dir, link.tenantId, link);
  if (problems.length) throw new ConnectorError("TENANT_BOUNDARY", `refused: ${problems.join("; ")}`, { problems, tenantId: link.tenantId, mailboxId: link.linkId, endpoint: link.endpointId, transient: false });
}
