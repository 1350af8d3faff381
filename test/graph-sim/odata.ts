/**
 * The OData query forms the simulator understands: exactly the documented ones the connector
 * uses. Anything else is answered with 400, never silently ignored, so a client relying on an
 * unsupported form fails here as it would on Graph.
 */
export class ODataError extends Error {
  constructor(readonly code: string, message: string) { super(message); }
}

export type MessageFilter =
  | { kind: "extProp"; id: string; value: string }
  | { kind: "isRead"; value: boolean };

const EXT_ANY = /^singleValueExtendedProperties\/any\(\s*(\w+)\s*:\s*\1\/id\s+eq\s+'((?:[^']|'')*)'\s+and\s+\1\/value\s+eq\s+'((?:[^']|'')*)'\s*\)$/i;

/** `singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...')`, `isRead eq b`
 * (https://learn.microsoft.com/en-us/graph/api/singlevaluelegacyextendedproperty-get). */
export function parseMessageFilter(f: string): MessageFilter {
  const m = f.trim().match(EXT_ANY);
  if (m) return { kind: "extProp", id: m[2]!.replace(/''/g, "'"), value: m[3]!.replace(/''/g, "'") };
  const r = f.trim().match(/^isRead\s+eq\s+(true|false)$/i);
  if (r) return { kind: "isRead", value: r[1]!.toLowerCase() === "true" };
  throw new ODataError("ErrorInvalidUrlQueryFilter", `The simulator does not support this $filter: ${f}`);
}

export type UserFilter = { kind: "proxy"; address: string } | { kind: "eq"; field: "mail" | "userPrincipalName"; value: string };

/** `proxyAddresses/any(x:x eq 'smtp:a@b')`, `mail eq '...'`, `userPrincipalName eq '...'`
 * (https://learn.microsoft.com/en-us/graph/aad-advanced-queries). */
export function parseUserFilter(f: string): UserFilter {
  const p = f.trim().match(/^proxyAddresses\/any\(\s*(\w+)\s*:\s*\1\s+eq\s+'((?:[^']|'')*)'\s*\)$/i);
  if (p) return { kind: "proxy", address: p[2]!.replace(/''/g, "'") };
  const e = f.trim().match(/^(mail|userPrincipalName)\s+eq\s+'((?:[^']|'')*)'$/i);
  if (e) return { kind: "eq", field: e[1]!.toLowerCase() === "mail" ? "mail" : "userPrincipalName", value: e[2]!.replace(/''/g, "'") };
  throw new ODataError("Request_UnsupportedQuery", `Unsupported or invalid query filter clause specified: ${f}`);
}

/** `$expand=singleValueExtendedProperties($filter=id eq 'a' or id eq 'b')`. */
export function parseExpand(e: string | null): string[] | undefined {
  if (!e) return undefined;
  const m = e.trim().match(/^singleValueExtendedProperties\(\s*\$filter=(.+)\)$/i);
  if (!m) throw new ODataError("BadRequest", `The simulator does not support this $expand: ${e}`);
  const ids: string[] = [];
  for (const part of m[1]!.split(/\s+or\s+/i)) {
    const x = part.trim().match(/^id\s+eq\s+'((?:[^']|'')*)'$/i);
    if (!x) throw new ODataError("BadRequest", `Unsupported $expand filter: ${part}`);
    ids.push(x[1]!.replace(/''/g, "'"));
  }
  return ids;
}

export function parseSelect(s: string | null): Set<string> | undefined {
  if (!s) return undefined;
  return new Set(s.split(",").map((x) => x.trim()).filter(Boolean));
}

/** Extended property ids compare case-insensitively, whitespace-normalised. */
export const normPropId = (id: string) => id.trim().replace(/\s+/g, " ").toLowerCase();

/** Segment names as Graph spells them; Graph matches them case-insensitively. */
const SEGMENTS = ["users", "mailFolders", "childFolders", "messages", "attachments", "contactFolders", "contacts", "events", "calendarView", "calendar", "subscriptions", "delta", "reauthorize", "move", "createUploadSession", "$batch"];
const CANONICAL = new Map(SEGMENTS.map((s) => [s.toLowerCase(), s]));

/**
 * `mailFolders('Inbox')` is the OData key syntax for `mailFolders/Inbox`, and segment names are
 * case-insensitive (`mailfolders`, `Users`): https://learn.microsoft.com/en-us/graph/api/mailfolder-get
 * (examples use `mailFolders/{id}`; OData 4.01 URL conventions section 4.3.1 give the key form).
 */
export function canonicalPath(path: string): string {
  const keyed = path.replace(/\/([A-Za-z]+)\('((?:[^']|'')*)'\)/g, (_, seg: string, key: string) => `/${seg}/${key.replace(/''/g, "'")}`);
  return keyed.split("/").map((seg, i, all) => {
    const c = CANONICAL.get(seg.toLowerCase());
    // A name in an id position (after users/ or a collection) is an id, not a segment: keep it.
    const prev = all[i - 1]?.toLowerCase();
    return c && !(prev && ["users", "mailfolders", "childfolders", "messages", "contactfolders", "contacts", "events", "subscriptions", "attachments"].includes(prev) && c !== "delta") ? c : seg;
  }).join("/");
}

export interface DeltaOptions {
  receivedAfter?: string;
  inclusive?: boolean;
  newestFirst?: boolean;
  changeTypes?: Array<"created" | "updated" | "deleted">;
}

/**
 * Message delta query options (https://learn.microsoft.com/en-us/graph/api/message-delta):
 * `$filter` only `receivedDateTime ge|gt {value}`, `$orderby` only `receivedDateTime desc`, the
 * custom `changeType=created|updated|deleted`; anything else 400 (never silently ignored).
 */
export function parseDeltaOptions(q: URLSearchParams): DeltaOptions {
  const out: DeltaOptions = {};
  const filter = q.get("$filter");
  if (filter !== null) {
    const m = filter.trim().match(/^receivedDateTime\s+(ge|gt)\s+(\d{4}-\d\d-\d\dT[\d:.]+Z?)$/i);
    if (!m) throw new ODataError("ErrorInvalidUrlQueryFilter", `Delta supports only $filter=receivedDateTime ge|gt {value}: ${filter}`);
    out.receivedAfter = new Date(m[2]!.endsWith("Z") ? m[2]! : `${m[2]}Z`).toISOString();
    out.inclusive = m[1]!.toLowerCase() === "ge";
  }
  const order = q.get("$orderby");
  if (order !== null) {
    if (!/^receivedDateTime\s+desc$/i.test(order.trim())) throw new ODataError("BadRequest", `Delta supports only $orderby=receivedDateTime desc: ${order}`);
    out.newestFirst = true;
  }
  const ct = q.get("changeType");
  if (ct !== null) {
    const types = ct.split(",").map((x) => x.trim().toLowerCase());
    if (!types.length || types.some((t) => !["created", "updated", "deleted"].includes(t))) throw new ODataError("BadRequest", `changeType must be created, updated or deleted: ${ct}`);
    out.changeTypes = types as DeltaOptions["changeTypes"];
  }
  return out;
}
