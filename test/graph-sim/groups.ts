/**
 * Entra groups and their members' delta, as Graph answers it
 * (https://learn.microsoft.com/en-us/graph/api/group-delta): `GET /groups/delta?$filter=id eq
 * '{id}'&$select=members` returns the group with `members@delta`, each member
 * `{"@odata.type":"#microsoft.graph.user","id":...}`, a member who left with
 * `"@removed":{"reason":"deleted"}`; the last page carries `@odata.deltaLink`, and following
 * it returns only the membership changes since. Needs GroupMember.Read.All, Group.Read.All or
 * Directory.Read.All; an unknown or expired token answers 410 SyncStateNotFound.
 */
import crypto from "node:crypto";
import { graphError, type GraphSimulator } from "./server.js";

interface SimGroup { id: string; tenantId: string; displayName: string; members: Set<string>; log: Array<{ seq: number; userId: string; removed: boolean }>; seq: number }

const groups = new WeakMap<GraphSimulator, Map<string, SimGroup>>();
const tokens = new WeakMap<GraphSimulator, Map<string, { groupId: string; seq: number }>>();
const of = (sim: GraphSimulator) => { if (!groups.has(sim)) { groups.set(sim, new Map()); tokens.set(sim, new Map()); } return groups.get(sim)!; };

export function addGroup(sim: GraphSimulator, tenantId: string, displayName: string): string {
  const g: SimGroup = { id: crypto.randomUUID(), tenantId, displayName, members: new Set(), log: [], seq: 0 };
  of(sim).set(g.id, g);
  return g.id;
}

export function addMember(sim: GraphSimulator, groupId: string, userId: string): void {
  const g = of(sim).get(groupId)!;
  g.members.add(userId);
  g.log.push({ seq: ++g.seq, userId, removed: false });
}

export function removeMember(sim: GraphSimulator, groupId: string, userId: string): void {
  const g = of(sim).get(groupId)!;
  g.members.delete(userId);
  g.log.push({ seq: ++g.seq, userId, removed: true });
}

/** Hook for server.ts: `/groups/...` routes; undefined when the path is not a group route. */
export function groupsRoute(sim: GraphSimulator, method: string, path: string, q: URLSearchParams, ctx: { tenantId: string; roles: string[] }): ReturnType<typeof graphError> | { status: number; body: unknown } | undefined {
  if (!path.startsWith("/groups")) return undefined;
  if (!["GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"].some((r) => ctx.roles.includes(r))) return graphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.");
  if (path !== "/groups/delta" || method !== "GET") return graphError(400, "BadRequest", `The simulator does not implement ${method} ${path}`);
  const token = q.get("$deltatoken");
  let groupId: string;
  let since = 0;
  if (token) {
    const t = tokens.get(sim)!.get(token);
    if (!t) return graphError(410, "SyncStateNotFound", "The sync state is not found or has expired.");
    ({ groupId, seq: since } = t);
  } else {
    const m = q.get("$filter")?.match(/^id eq '([^']+)'$/);
    if (!m) return graphError(400, "BadRequest", "The simulator supports group delta filtered to one group (id eq '...').");
    groupId = m[1]!;
  }
  const g = of(sim).get(groupId);
  if (!g || g.tenantId !== ctx.tenantId) return graphError(404, "Request_ResourceNotFound", `Resource '${groupId}' does not exist or one of its queried reference-property objects are not present.`);
  // First round: the current members; later rounds: the last change per member since the token.
  const changes = new Map<string, boolean>();
  if (!token) for (const u of g.members) changes.set(u, false);
  else for (const e of g.log) if (e.seq > since) changes.set(e.userId, e.removed);
  const next = crypto.randomBytes(12).toString("base64url");
  tokens.get(sim)!.set(next, { groupId, seq: g.seq });
  const members = [...changes].map(([id, removed]) => ({ "@odata.type": "#microsoft.graph.user", id, ...(removed ? { "@removed": { reason: "deleted" } } : {}) }));
  return { status: 200, body: { value: [{ "@odata.type": "#microsoft.graph.group", id: g.id, displayName: g.displayName, "members@delta": members }], "@odata.deltaLink": `${sim.origin}/v1.0/groups/delta?$deltatoken=${next}` } };
}
