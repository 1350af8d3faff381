/**
 * What an administrator looks at: per tenant and per link the last sync, how long ago, unread
 * voice messages, the last error with its reason, skipped items, and subscription expiry; and
 * alerts for what needs a person: links that keep failing, credentials an endpoint rejected,
 * subscriptions that could not be renewed, mass-delete stops.
 * Who may read it is decided by src/admin/adminAuth.ts (Entra tokens in Azure, a local token
 * in the dev host).
 */
import type { Deps } from "../app/deps.js";
import type { KindStatus, MailboxLink, SubscriptionHealth } from "../state/stateStore.js";
import type { CredentialBlock } from "../state/storeAccessState.js";
import { storeAccessState } from "../app/credentials.js";
import { budgetUse, type ConnectionBudget } from "../app/connectionBudget.js";

/** Runs failing this many times in a row raise "keeps failing", whatever the reason. */
const FAILING_STREAK = 3;
const KIND_NAMES = { contacts: "contacts", calendar: "calendar", location: "UC location", mail: "e-mail on the phone" } as const;

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
  /** The disaster-recovery mirror (docs/mirror.md): backlog (items), last run, clock skew per store. */
  mirror?: KindStatus;
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
  page?: { matching: number; shown: number; next?: string; nextOffset?: number };
}

/** What an administrator asks to see: thousands of mailboxes are read a page at a time. */
export interface StatusQuery {
  tenantId?: string;
  /** Only links with an error, skipped items or an alert. */
  problems?: boolean;
  /** Only links with an alert of this code (e.g. IMAP_AUTH_FAILED). */
  problem?: string;
  /** Only links in this state. */
  state?: string;
  /** Words found in the link id, voice mailbox or Exchange user (case-insensitive). */
  search?: string;
  sort?: SortKey;
  dir?: "asc" | "desc";
  limit?: number;
  /** The link id the previous page ended with (default order). */
  after?: string;
  /** Links skipped (other orders). */
  offset?: number;
  /** One link's page. */
  link?: string;
}

export const SORT_KEYS = ["mailbox", "user", "state", "lastSync", "unread", "subscription", "problems"] as const;
export type SortKey = (typeof SORT_KEYS)[number];
export const LINK_STATES = ["enabled", "paused", "disabled", "userGone"] as const;

/** Reads ?tenant=&state=&problem=&q=&sort=&dir=&limit=&after=&offset=&link= ; anything malformed is ignored, not an error. */
export function parseStatusQuery(q: URLSearchParams): StatusQuery {
  const limit = q.get("limit");
  const offset = q.get("offset");
  const problem = q.get("problem");
  const sort = q.get("sort") as SortKey | null;
  const search = q.get("q")?.trim().slice(0, 100);
  return {
    ...(q.get("tenant") ? { tenantId: q.get("tenant")! } : {}),
    ...(q.get("problems") === "1" || q.get("problems") === "true" || problem === "any" ? { problems: true } : {}),
    ...(problem && /^[A-Z_]{2,40}$/.test(problem) ? { problem } : {}),
    ...((LINK_STATES as readonly string[]).includes(q.get("state") ?? "") ? { state: q.get("state")! } : {}),
    ...(search ? { search } : {}),
    ...(sort && SORT_KEYS.includes(sort) ? { sort } : {}),
    ...(q.get("dir") === "desc" ? { dir: "desc" as const } : q.get("dir") === "asc" ? { dir: "asc" as const } : {}),
    ...(limit && /^\d{1,5}$/.test(limit) ? { limit: Number(limit) } : {}),
    ...(offset && /^\d{1,7}$/.test(offset) ? { offset: Number(offset) } : {}),
    ...(q.get("after") ? { after: q.get("after")! } : {}),
    ...(q.get("link") ? { link: q.get("link")! } : {}),
  };
}

export const STATUS_PAGE_DEFAULT = 200;
export const STATUS_PAGE_MAX = 2000;

const byNumber = (a: number | undefined, b: number | undefined) => (a ?? Infinity) - (b ?? Infinity);
// Thousands of links are sorted per page view: a collator made once, not localeCompare's per call.
const numeric = new Intl.Collator("en", { numeric: true });
const text = new Intl.Collator("en");
const byId = (a: LinkStatus, b: LinkStatus) => (a.linkId < b.linkId ? -1 : a.linkId > b.linkId ? 1 : 0);
const SORTS: Record<SortKey, (a: LinkStatus, b: LinkStatus, alerts: Map<string, number>) => number> = {
  mailbox: (a, b) => numeric.compare(a.voiceMailbox, b.voiceMailbox),
  user: (a, b) => text.compare(a.exchangeUser, b.exchangeUser),
  state: (a, b) => text.compare(a.state, b.state),
  // Never synced counts as the longest ago.
  lastSync: (a, b) => byNumber(a.lagSeconds, b.lagSeconds),
  unread: (a, b) => a.unreadVoice - b.unreadVoice,
  subscription: (a, b) => text.compare(a.subscriptionExpiresAt ?? "~", b.subscriptionExpiresAt ?? "~"),
  problems: (a, b, alerts) => (alerts.get(a.linkId) ?? 0) - (alerts.get(b.linkId) ?? 0) || text.compare(a.lastError?.code ?? "", b.lastError?.code ?? ""),
};

/** The report narrowed to one page of the links asked for, in the order asked for; alerts follow the same selection. */
export function selectLinks(r: StatusReport, q: StatusQuery): StatusReport {
  const limit = Math.min(STATUS_PAGE_MAX, Math.max(1, Math.floor(q.limit ?? STATUS_PAGE_DEFAULT)));
  const alertCount = new Map<string, number>();
  const alertCodes = new Map<string, Set<string>>();
  for (const a of r.alerts) {
    if (!a.linkId) continue;
    alertCount.set(a.linkId, (alertCount.get(a.linkId) ?? 0) + 1);
    alertCodes.set(a.linkId, (alertCodes.get(a.linkId) ?? new Set()).add(a.code));
  }
  const words = (q.search ?? "").toLowerCase().split(/\s+/).filter(Boolean);
  const matching = r.links
    .filter((l) => !q.tenantId || l.tenantId === q.tenantId)
    .filter((l) => !q.state || l.state === q.state)
    .filter((l) => !q.problems || l.lastError || l.skipped.length || alertCount.has(l.linkId))
    .filter((l) => !q.problem || alertCodes.get(l.linkId)?.has(q.problem) || l.lastError?.code === q.problem)
    .filter((l) => !words.length || words.every((w) => `${l.linkId} ${l.voiceMailbox} ${l.exchangeUser}`.toLowerCase().includes(w)));
  const sign = q.dir === "desc" ? -1 : 1;
  const cmp = q.sort ? SORTS[q.sort] : undefined;
  matching.sort(cmp ? (a, b) => sign * cmp(a, b, alertCount) || byId(a, b) : (a, b) => sign * byId(a, b));
  // The default order pages by link id (stable while links come and go); other orders by offset.
  const pagedById = !q.sort && q.dir !== "desc";
  const from = pagedById ? (q.after ? matching.filter((l) => l.linkId > q.after!) : matching) : matching.slice(q.offset ?? 0);
  const links = from.slice(0, limit);
  const ids = new Set(matching.map((l) => l.linkId));
  const more = from.length > limit;
  return {
    ...r,
    tenants: q.tenantId ? r.tenants.filter((t) => t.tenantId === q.tenantId) : r.tenants,
    links,
    alerts: r.alerts.filter((a) => (a.linkId ? ids.has(a.linkId) : !q.tenantId && !q.state && !q.search && !q.problem)),
    page: { matching: matching.length, shown: links.length, ...(more ? (pagedById ? { next: links.at(-1)!.linkId } : { nextOffset: (q.offset ?? 0) + limit }) : {}) },
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
      contacts: l.kinds?.contacts, calendar: l.kinds?.calendar, location: l.kinds?.location, ...(l.kinds?.mirror ? { mirror: l.kinds.mirror } : {}),
    });
    alerts.push(...mirrorAlerts(l, deps.config.mirror.skewAlertSeconds));
    alerts.push(...kindAlerts(l).filter((a) => !covered(l, l.kinds?.[a.kind!]?.lastError?.code)).map(({ kind: _k, ...a }) => a));
    if (l.state === "userGone") alerts.push({ severity: "critical", linkId: l.linkId, code: "USER_GONE", text: `the Exchange user ${l.upn ?? l.userId} was deleted, disabled or lost its mailbox/licence (${l.userGone?.message ?? "Graph: unknown user"}); relink or unlink (umconnect link relink|unlink ${l.linkId})` });
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

/** The mirror's own alerts: its last error (a held-back mass delete), copies the backup refuses, a store clock that is off. */
function mirrorAlerts(l: MailboxLink, skewAlertSeconds: number): Alert[] {
  const k = l.kinds?.mirror;
  if (!k) return [];
  const out: Alert[] = [];
  if (k.lastError) out.push({ severity: k.lastError.code === "MASS_DELETE_REFUSED" ? "critical" : "warning", linkId: l.linkId, code: k.lastError.code, text: `mirror: ${k.lastError.message}` });
  if (k.skipped) out.push({ severity: "warning", linkId: l.linkId, code: "MIRROR_REFUSED", text: `mirror: the backup refused ${k.skipped} message(s); retried with backoff (umconnect mirror verify ${l.linkId})` });
  for (const [endpointId, s] of Object.entries(k.skew ?? {})) {
    if (Math.abs(s) > skewAlertSeconds) out.push({ severity: "warning", linkId: l.linkId, endpointId, code: "CLOCK_SKEW", text: `mirror: the clock of store ${endpointId} is ${s > 0 ? "ahead" : "behind"} by ${Math.abs(s)} s (alert above ${skewAlertSeconds} s); the stores' clocks must agree (NTP)` });
  }
  return out;
}

function kindAlerts(l: MailboxLink): Array<Alert & { kind?: "contacts" | "calendar" | "location" | "mail" }> {
  const out: Array<Alert & { kind?: "contacts" | "calendar" | "location" | "mail" }> = [];
  for (const kind of ["contacts", "calendar", "location", "mail"] as const) {
    const k = l.kinds?.[kind];
    if (!k) continue;
    if (k.lastError) {
      const why = NEEDS_A_PERSON[k.lastError.code];
      out.push({ kind, severity: why ? "critical" : "warning", linkId: l.linkId, code: k.lastError.code, text: `${KIND_NAMES[kind]}: ${why ?? `last run failed: ${k.lastError.message}`}` });
    }
    if ((k.failureStreak ?? 0) >= FAILING_STREAK) out.push({ kind, severity: "critical", linkId: l.linkId, code: "KEEPS_FAILING", text: `${KIND_NAMES[kind]} sync failed ${k.failureStreak} times in a row` });
    if (k.skipped) out.push({ severity: "warning", linkId: l.linkId, code: "ITEMS_SKIPPED", text: `${k.skipped} ${KIND_NAMES[kind]} item(s) could not be read (see the link's records)` });
    if (k.conflicts) out.push({ severity: "warning", linkId: l.linkId, code: "CONFLICTS_KEPT", text: `${k.conflicts} contact edit conflict(s); the losing versions are kept (umconnect link conflicts ${l.linkId})` });
  }
  return out;
}
