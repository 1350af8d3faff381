/**
 * What an administrator looks at: per tenant and per link the last sync, how long ago, unread
 * voice messages, the last error with its reason, skipped items, and subscription expiry; and
 * alerts for what needs a person: links that keep failing, credentials an endpoint rejected,
 * subscriptions that could not be renewed, mass-delete stops.
 * Who may read it is decided by src/admin/adminAuth.ts (Entra tokens in Azure, a local token
 * in the dev host).
 */
import { PAGE_SECURITY_HEADERS } from "../security/pageHeaders.js";
import type { HttpResponseInit } from "@azure/functions";
import type { Deps } from "../app/deps.js";
import type { KindStatus, MailboxLink, SubscriptionHealth } from "../state/stateStore.js";
import type { CredentialBlock } from "../state/storeAccessState.js";
import { storeAccessState } from "../app/credentials.js";
import { budgetUse, type ConnectionBudget } from "../app/connectionBudget.js";

/** Runs failing this many times in a row raise "keeps failing", whatever the reason. */
const FAILING_STREAK = 3;
const KIND_NAMES = { contacts: "contacts", calendar: "calendar", location: "UC location" } as const;

export interface LinkStatus {
  linkId: string;
  tenantId: string;
  voiceMailbox: string;
  exchangeUser: string;
  state: string;
  profileId: string;
  /** The settings this user's override changes (see `umconnect override`). */
  overrides?: string[];
  lastSyncAt?: string;
  lagSeconds?: number;
  unreadVoice: number;
  /** Runs Graph throttled and put off, in total, and the last time. */
  throttled?: { count: number; lastAt: string };
  /** MWI drift found and corrected by reconcile runs, in total. */
  readDriftTotal: number;
  skipped: Array<{ syncKey: string; code: string; message: string }>;
  lastError?: { code: string; message: string; at: string };
  subscriptionExpiresAt?: string;
  /** Graph subscription upkeep per kind: active, refused or failed (then polled), last error. */
  subscriptions?: MailboxLink["subscriptions"];
  /** Contacts, calendar and UC location, when the link's profile syncs them. */
  contacts?: KindStatus;
  calendar?: KindStatus;
  location?: KindStatus;
}

export interface Alert {
  severity: "warning" | "critical";
  linkId?: string;
  /** A voice store's alert: one per endpoint, however many links it stops. */
  endpointId?: string;
  code: string;
  text: string;
}

export interface StatusReport {
  generatedAt: string;
  tenants: Array<{ tenantId: string; status: string; links: number; failing: number }>;
  links: LinkStatus[];
  alerts: Alert[];
  /** Per voice store: connections in use (all instances) against its budget. */
  stores?: Array<{ endpointId: string; budget: ConnectionBudget; address: number; busiestUser?: { mailbox: string; connections: number } }>;
  /** Set when the links were selected (tenant, problems only) and paged. */
  page?: { matching: number; shown: number; next?: string };
}

/** What an administrator asks to see: thousands of mailboxes are read a page at a time. */
export interface StatusQuery {
  tenantId?: string;
  /** Only links with an error, skipped items or an alert. */
  problems?: boolean;
  limit?: number;
  /** The link id the previous page ended with. */
  after?: string;
}

/** Reads ?tenant=&problems=1&limit=&after= ; anything malformed is ignored, not an error. */
export function parseStatusQuery(q: URLSearchParams): StatusQuery {
  const limit = q.get("limit");
  return {
    ...(q.get("tenant") ? { tenantId: q.get("tenant")! } : {}),
    ...(q.get("problems") === "1" || q.get("problems") === "true" ? { problems: true } : {}),
    ...(limit && /^\d{1,5}$/.test(limit) ? { limit: Number(limit) } : {}),
    ...(q.get("after") ? { after: q.get("after")! } : {}),
  };
}

export const STATUS_PAGE_DEFAULT = 200;
export const STATUS_PAGE_MAX = 2000;

/** The report narrowed to one page of the links asked for; alerts follow the same selection. */
export function selectLinks(r: StatusReport, q: StatusQuery): StatusReport {
  const limit = Math.min(STATUS_PAGE_MAX, Math.max(1, Math.floor(q.limit ?? STATUS_PAGE_DEFAULT)));
  const alerted = new Set(r.alerts.map((a) => a.linkId));
  const matching = r.links
    .filter((l) => !q.tenantId || l.tenantId === q.tenantId)
    .filter((l) => !q.problems || l.lastError || l.skipped.length || alerted.has(l.linkId))
    .sort((a, b) => a.linkId.localeCompare(b.linkId));
  const from = q.after ? matching.filter((l) => l.linkId > q.after!) : matching;
  const links = from.slice(0, limit);
  const ids = new Set(matching.map((l) => l.linkId));
  return {
    ...r,
    tenants: q.tenantId ? r.tenants.filter((t) => t.tenantId === q.tenantId) : r.tenants,
    links,
    alerts: r.alerts.filter((a) => (a.linkId ? ids.has(a.linkId) : !q.tenantId)),
    page: { matching: matching.length, shown: links.length, ...(from.length > limit ? { next: links.at(-1)!.linkId } : {}) },
  };
}

const NEEDS_A_PERSON: Record<string, string> = {
  IMAP_AUTH_FAILED: "the voice store rejected the super-user credentials (expired password?)",
  GRAPH_AUTH_FAILED: "Entra ID rejected the app's credentials, or consent was revoked",
  FORBIDDEN: "Graph denied access to the mailbox (mailbox scoping or consent)",
  MASS_DELETE_REFUSED: "a mass delete was stopped; check the voice store, then override if it is intended",
  SUBSCRIPTION_FAILED: "the Graph subscription could not be created or renewed",
  SUBSCRIPTION_REFUSED: "Graph refused the subscription; the mailbox is polled at the fast-check interval until it accepts again",
  IMAP_TLS_FAILED: "the voice store's certificate is not trusted",
  TENANT_BOUNDARY: "the link's voice store or profile belongs to another tenant (or has no owner yet): runs are refused until the operator fixes the owner or the link",
};

export async function statusReport(deps: Deps, now = Date.now()): Promise<StatusReport> {
  const [tenants, links, subs, blocks] = await Promise.all([deps.state.listTenants(), deps.state.listLinks({}), deps.state.listSubscriptions({}), storeAccessState(deps).listBlocks()]);
  const stopped = blocks.filter((b) => b.state === "blocked");
  const alerts: Alert[] = credentialAlerts(stopped, links);
  // A link whose credential is stopped is covered by its endpoint's one alert.
  const covered = (l: MailboxLink, code: string | undefined) => code === "IMAP_AUTH_FAILED" && stopped.some((b) => (b.linkId ? b.linkId === l.linkId : b.endpointId === l.endpointId));
  const out: LinkStatus[] = [];
  for (const l of links) {
    // Item rows are read only for links whose last run skipped something.
    const items = l.skippedItems ? await deps.state.voicemailState(l.linkId).loadItems() : [];
    const skipped = items.filter((i) => i.skipped && !/^(NOT_COPIED_BY_PROFILE|LOOP_PREVENTED)$/.test(i.skipped.code)).map((i) => ({ syncKey: i.syncKey, code: i.skipped!.code, message: i.skipped!.message }));
    const sub = subs.filter((s) => s.linkId === l.linkId).sort((a, b) => b.expiresAt.localeCompare(a.expiresAt))[0];
    out.push({
      linkId: l.linkId, tenantId: l.tenantId, voiceMailbox: `${l.voiceMailbox}@${l.endpointId}`, exchangeUser: l.upn ?? l.userId, state: l.state,
      profileId: l.profileId, ...(l.profileOverride ? { overrides: Object.keys(l.profileOverride) } : {}), ...(l.throttled ? { throttled: l.throttled } : {}),
      lastSyncAt: l.lastSyncAt, lagSeconds: l.lastSyncAt ? Math.round((now - Date.parse(l.lastSyncAt)) / 1000) : undefined,
      unreadVoice: l.unreadVoice, readDriftTotal: l.readDriftTotal ?? 0, skipped, lastError: l.lastError, subscriptionExpiresAt: sub?.expiresAt,
      ...(l.subscriptions ? { subscriptions: l.subscriptions } : {}),
      contacts: l.kinds?.contacts, calendar: l.kinds?.calendar, location: l.kinds?.location,
    });
    alerts.push(...kindAlerts(l).filter((a) => !covered(l, l.kinds?.[a.kind!]?.lastError?.code)).map(({ kind: _k, ...a }) => a));
    if (l.state === "userGone") alerts.push({ severity: "critical", linkId: l.linkId, code: "USER_GONE", text: `the Exchange user ${l.upn ?? l.userId} was deleted, disabled or lost its mailbox/licence (${l.userGone?.message ?? "Graph: unknown user"}); relink or unlink (umconnect relink|unlink ${l.linkId})` });
    if (l.lastError && l.state !== "userGone" && !covered(l, l.lastError.code)) {
      const why = NEEDS_A_PERSON[l.lastError.code];
      alerts.push({ severity: why ? "critical" : "warning", linkId: l.linkId, code: l.lastError.code, text: why ?? `last run failed: ${l.lastError.message}` });
    }
    if ((l.failureStreak ?? 0) >= FAILING_STREAK && !covered(l, l.lastError?.code)) alerts.push({ severity: "critical", linkId: l.linkId, code: "KEEPS_FAILING", text: `voicemail sync failed ${l.failureStreak} times in a row` });
    if (sub?.status === "failed") alerts.push({ severity: "critical", linkId: l.linkId, code: "SUBSCRIPTION_FAILED", text: NEEDS_A_PERSON.SUBSCRIPTION_FAILED! });
    const troubled = Object.entries(l.subscriptions ?? {}).filter((e): e is [string, SubscriptionHealth] => !!e[1] && e[1].state !== "active");
    // One alert per link, however many kinds and retries: sync goes on by polling meanwhile.
    if (troubled.length) alerts.push({ severity: "warning", linkId: l.linkId, code: "SUBSCRIPTION_REFUSED", text: `${troubled.map(([k, h]) => `${k} ${h.state}`).join(", ")}: ${NEEDS_A_PERSON.SUBSCRIPTION_REFUSED} (${troubled[0]![1].lastError?.message ?? ""})` });
    if (skipped.length) alerts.push({ severity: "warning", linkId: l.linkId, code: "ITEMS_SKIPPED", text: `${skipped.length} voice message(s) could not be copied (see reasons)` });
  }
  const budgets = new Map<string, ConnectionBudget>();
  try {
    const dir = await deps.directory();
    for (const e of dir.listEndpoints()) { const b = dir.endpoint(e.id).connectionBudget; if (b) budgets.set(e.id, b); }
  } catch (e) {
    deps.log.warn("status.directory.failed", { error: e }); // the report still shows the links
  }
  return {
    stores: await budgetUse(deps, budgets),
    generatedAt: new Date(now).toISOString(),
    tenants: tenants.map((t) => ({ tenantId: t.tenantId, status: t.status, links: links.filter((l) => l.tenantId === t.tenantId).length, failing: links.filter((l) => l.tenantId === t.tenantId && l.lastError).length })),
    links: out,
    alerts,
  };
}

/**
 * One alert per voice store whose credentials the lockout protection stopped: its super user
 * (which stops every link on it) and/or links' own passwords, named.
 */
function credentialAlerts(stopped: CredentialBlock[], links: MailboxLink[]): Alert[] {
  const out: Alert[] = [];
  for (const endpointId of [...new Set(stopped.map((b) => b.endpointId))].sort()) {
    const superUser = stopped.find((b) => b.endpointId === endpointId && !b.linkId);
    const own = stopped.filter((b) => b.endpointId === endpointId && b.linkId).map((b) => b.linkId!).sort();
    const parts: string[] = [];
    if (superUser) parts.push(`the store rejected the super-user credential at ${superUser.since} ("${superUser.answer}"); logins stopped for all ${links.filter((l) => l.endpointId === endpointId).length} link(s) until the secret changes or \`umconnect endpoint test ${endpointId}\` succeeds`);
    if (own.length) parts.push(`${own.length} link password(s) rejected, logins with them stopped (\`umconnect credentials rotate <link>\`): ${own.slice(0, 20).join(", ")}${own.length > 20 ? ", ..." : ""}`);
    out.push({ severity: "critical", endpointId, code: "IMAP_AUTH_FAILED", text: `voice store ${endpointId}: ${parts.join("; ")}` });
  }
  return out;
}

function kindAlerts(l: MailboxLink): Array<Alert & { kind?: "contacts" | "calendar" | "location" }> {
  const out: Array<Alert & { kind?: "contacts" | "calendar" | "location" }> = [];
  for (const kind of ["contacts", "calendar", "location"] as const) {
    const k = l.kinds?.[kind];
    if (!k) continue;
    if (k.lastError) {
      const why = NEEDS_A_PERSON[k.lastError.code];
      out.push({ kind, severity: why ? "critical" : "warning", linkId: l.linkId, code: k.lastError.code, text: `${KIND_NAMES[kind]}: ${why ?? `last run failed: ${k.lastError.message}`}` });
    }
    if ((k.failureStreak ?? 0) >= FAILING_STREAK) out.push({ kind, severity: "critical", linkId: l.linkId, code: "KEEPS_FAILING", text: `${KIND_NAMES[kind]} sync failed ${k.failureStreak} times in a row` });
    if (k.skipped) out.push({ severity: "warning", linkId: l.linkId, code: "ITEMS_SKIPPED", text: `${k.skipped} ${KIND_NAMES[kind]} item(s) could not be read (see the link's records)` });
    if (k.conflicts) out.push({ severity: "warning", linkId: l.linkId, code: "CONFLICTS_KEPT", text: `${k.conflicts} contact edit conflict(s); the losing versions are kept (umconnect conflicts ${l.linkId})` });
  }
  return out;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function kindCell(l: LinkStatus): string {
  const part = (name: string, k: KindStatus | undefined, extra: string) => k ? `${name}: ${k.lastError ? `<b>${esc(k.lastError.code)}</b>` : k.lastSyncAt ? "ok" : "pending"}${extra}` : "";
  return [
    part("contacts", l.contacts, l.contacts?.conflicts ? ` (${l.contacts.conflicts} conflicts kept)` : ""),
    part("calendar", l.calendar, l.calendar?.items !== undefined ? ` (${l.calendar.items} items)` : ""),
    part("location", l.location, l.location?.location ? ` (${esc(l.location.location)})` : ""),
  ].filter(Boolean).join("<br>") || "-";
}

export function statusPage(r: StatusReport, q: StatusQuery = {}): HttpResponseInit {
  const nextQuery = r.page?.next ? new URLSearchParams({ format: "html", after: r.page.next, ...(q.tenantId ? { tenant: q.tenantId } : {}), ...(q.problems ? { problems: "1" } : {}), ...(q.limit ? { limit: String(q.limit) } : {}) }) : undefined;
  const nextLink = nextQuery ? `<p><a href="?${esc(nextQuery.toString())}">next page</a></p>` : "";
  const row = (l: LinkStatus) => `<tr class="${l.lastError ? "bad" : ""}"><td>${esc(l.voiceMailbox)}</td><td>${esc(l.exchangeUser)}</td><td>${esc(l.state)}<br><small>${esc(l.profileId)}${l.overrides ? ` + override (${esc(l.overrides.join(", "))})` : ""}</small></td><td>${l.lastSyncAt ? `${l.lagSeconds} s ago` : "never"}</td><td>${l.unreadVoice}${l.readDriftTotal ? ` (drift fixed: ${l.readDriftTotal})` : ""}</td><td>${l.subscriptionExpiresAt ? esc(l.subscriptionExpiresAt.slice(0, 16).replace("T", " ")) : "-"}${Object.entries(l.subscriptions ?? {}).filter(([, h]) => h && h.state !== "active").map(([k, h]) => `<br><b>${esc(k)}: ${esc(h!.state)}</b> (polled)`).join("")}</td><td>${kindCell(l)}</td><td>${l.lastError ? `${esc(l.lastError.code)}: ${esc(l.lastError.message)}` : ""}${l.throttled ? `<br>throttled by Graph ${l.throttled.count}x, last ${esc(l.throttled.lastAt.slice(0, 16).replace("T", " "))}` : ""}${l.skipped.length ? `<br>${l.skipped.length} skipped: ${l.skipped.slice(0, 3).map((s) => esc(s.code)).join(", ")}` : ""}</td></tr>`;
  const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>umconnect status</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;font-size:.9rem}tr.bad td{background:#fdecea}.critical{color:#a4262c}.warning{color:#8a5a00}</style></head><body>
<h1>umconnect status</h1><p>Generated ${esc(r.generatedAt)}</p>
${r.stores?.length ? `<h2>Voice stores: connections in use (all instances) / budget</h2><table><tr><th>endpoint</th><th>per address</th><th>busiest user</th></tr>${r.stores.map((x) => `<tr><td>${esc(x.endpointId)}</td><td>${x.address} / ${x.budget.perAddress}</td><td>${x.busiestUser ? `${esc(x.busiestUser.mailbox)}: ${x.busiestUser.connections}` : "0"} / ${x.budget.perUser}</td></tr>`).join("")}</table>` : ""}
<h2>Alerts (${r.alerts.length})</h2><ul>${r.alerts.map((a) => `<li class="${a.severity}">${esc(a.severity)}: ${a.linkId ? `${esc(a.linkId)}: ` : ""}${esc(a.text)} <code>${esc(a.code)}</code></li>`).join("") || "<li>none</li>"}</ul>
<h2>Tenants</h2><ul>${r.tenants.map((t) => `<li>${esc(t.tenantId)}: ${esc(t.status)}, ${t.links} links, ${t.failing} failing</li>`).join("")}</ul>
<h2>Mailboxes${r.page ? ` (${r.page.shown} of ${r.page.matching})` : ""}</h2>${nextLink}<table><thead><tr><th>voice mailbox</th><th>Exchange user</th><th>state / profile</th><th>last sync</th><th>unread</th><th>subscription until</th><th>contacts / calendar</th><th>problems</th></tr></thead><tbody>${r.links.map(row).join("")}</tbody></table>
</body></html>`;
  return { status: 200, headers: { "content-type": "text/html; charset=utf-8", ...PAGE_SECURITY_HEADERS, "cache-control": "no-store" }, body };
}
