/**
 * Tenants, mailbox links and the index rows that keep each link side unique; Entra groups
 * linked automatically and the SMTP -> voice mailbox map.
 *
 *   tenants   PK "tenant"  RK tenantId                 consented tenants
 *   links     PK "link"    RK linkId                   voice mailbox <-> Exchange mailbox
 *   index     PK "voice|<endpoint>" / "user|<tenant>"  uniqueness of each link side
 *   cursors   PK "groups" / "mailboxmap|<endpoint>"   group bindings, mailbox map
 *   runs      PK "fast"    RK linkId                   links the fast read check looks at (unread
 *                                                     voicemail, or no working subscription)
 * Each link row carries its bucket (0..1023, a hash of its id): the timers' fan-out gives each
 * shard a range of buckets (src/app/schedule.ts), so no invocation lists every link.
 * Links live in one partition so a link can be found by id alone (webhooks carry only the
 * link id); a few thousand rows per tenant are well within one partition's limits
 * (https://learn.microsoft.com/en-us/azure/storage/tables/scalability-targets).
 */
import { ConnectorError, isConnectorError } from "../errors.js";
import { StateRows } from "./rows.js";
import { bool, entity, getOrUndefined, guard, keyOf, listRows, num, str, type Row } from "./tables.js";

/** "userGone": the Exchange user was deleted, lost its mailbox or licence (Graph answered as for an unknown user); set by a run, cleared by relink/resume. */
export type LinkState = "enabled" | "paused" | "disabled" | "userGone";

export interface Tenant {
  tenantId: string;
  displayName?: string;
  consentedAt?: string;
  /** The operator who started the consent link, when one did (admin object id or "local-token"). */
  consentStartedBy?: string;
  grantedRoles: string[];
  status: "active" | "revoked";
}

export interface MailboxLink {
  linkId: string;
  tenantId: string;
  /** Voice side: the store endpoint and the voice mailbox name on it. */
  endpointId: string;
  voiceMailbox: string;
  /** Exchange side: the Graph user id and, for people, the UPN. */
  userId: string;
  upn?: string;
  profileId: string;
  state: LinkState;
  createdAt: string;
  updatedAt: string;
  lastSyncAt?: string;
  lastError?: { code: string; message: string; at: string };
  /** Unread voice messages after the last run: drives the fast read check. */
  unreadVoice: number;
  /** Messages the last run could not copy (reasons in their item rows). */
  skippedItems?: number;
  /** Read states that disagreed between the sides, found by full (reconcile) runs, in total. */
  readDriftTotal?: number;
  /** Contacts, calendar and UC-location runs: their own last run and error. */
  kinds?: Partial<Record<"contacts" | "calendar" | "location" | "mail" | "mirror", KindStatus>>;
  /** Voicemail runs that failed in a row (alerts when a user keeps failing). */
  failureStreak?: number;
  /** An administrator allowed the next run of these kinds to apply a mass delete (ISO time of the decision). */
  massDeleteAllowed?: Partial<Record<"voicemail" | "contacts" | "calendar", string>>;
  /** Runs Graph throttled (429) and put off, in total, and when that last happened. */
  throttled?: { count: number; lastAt: string };
  /** This user's departures from the link's feature profile (validated when set). */
  profileOverride?: Record<string, unknown>;
  /** Graph subscription upkeep per kind (src/app/subscriptions.ts): its state and last error. */
  subscriptions?: Partial<Record<"voicemail" | "contacts" | "calendar" | "mail", SubscriptionHealth>>;
  /** Some kind has no working subscription: the fast check polls the link meanwhile. */
  subscriptionFallback?: boolean;
  /** A row in the fast-check list exists for this link (kept by updateLink; src/app/schedule.ts reads the list). */
  fastListed?: boolean;
  /**
   * End of the link's fast-read window (seconds since the epoch): the voicemail run that last
   * changed something sets it to now + UMC_FAST_READ_WINDOW_SECONDS. Undefined: no window yet
   * (checked as before, until a run sets one).
   */
  fastUntil?: number;
  /** The window end the fast-check row holds (the row is rewritten when fastUntil moves). */
  fastListedUntil?: number;
  /** `umconnect resync --adopt`: the next voicemail run adopts other products' voicemails (ISO time asked). */
  adoptRequested?: string;
  /** Why the link is "userGone": what Graph answered, and since when. */
  userGone?: { code: string; message: string; since: string };
  etag?: string;
}

export interface SubscriptionHealth {
  /** active: Graph notifies; refused: Graph said no (4xx), polling until it accepts;
   *  failed: Graph or the network failed (5xx, timeout), polling and retrying. */
  state: "active" | "refused" | "failed";
  since: string;
  lastError?: { code: string; message: string; at: string };
  expiresAt?: string;
}

export interface KindStatus {
  lastSyncAt?: string;
  lastError?: { code: string; message: string; at: string };
  /** Contacts: edit/edit conflicts kept in total; items skipped now. */
  conflicts?: number;
  skipped?: number;
  /** Calendar: occurrences mirrored now; location: the value set now. */
  items?: number;
  location?: string | null;
  /** Location: when the next scheduled check is due (ISO). */
  nextCheckAt?: string;
  /** Runs that failed in a row. */
  failureStreak?: number;
  /** Mirror: each store's clock minus the app's, in seconds, by endpoint id (probe APPEND), and when measured. */
  skew?: Record<string, number>;
  skewAt?: string;
}

export interface GroupBinding { tenantId: string; groupId: string; endpointId: string; profileId: string; deltaLink?: string }

export class LinkRows extends StateRows {
  // ---- tenants -------------------------------------------------------------------------

  async upsertTenant(t: Tenant): Promise<void> {
    const c = await this.tables.client("tenants");
    await guard(() => c.upsertEntity(entity("tenant", keyOf(t.tenantId), { tenantId: t.tenantId, displayName: t.displayName, consentedAt: t.consentedAt, consentStartedBy: t.consentStartedBy, grantedRoles: JSON.stringify(t.grantedRoles), status: t.status }), "Replace"));
  }

  async getTenant(tenantId: string): Promise<Tenant | undefined> {
    const row = await getOrUndefined(await this.tables.client("tenants"), "tenant", keyOf(tenantId));
    return row && toTenant(row);
  }

  async listTenants(): Promise<Tenant[]> {
    const c = await this.tables.client("tenants");
    const out: Tenant[] = [];
    await guard(async () => { for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: "PartitionKey eq 'tenant'" } })) out.push(toTenant(row as Row)); });
    return out;
  }

  // ---- mailbox links -------------------------------------------------------------------

  /**
   * Creates a link; a second link to either side is refused with CONFLICT. Each side owns an
   * index row; the rows sit in different partitions (no batch across them), so they are
   * written first, in a fixed order, and rolled back on failure. An index row left by a
   * crash points to a link that does not exist and is taken over (ETag-guarded).
   */
  async createLink(input: Omit<MailboxLink, "createdAt" | "updatedAt" | "unreadVoice" | "etag"> & { unreadVoice?: number }): Promise<MailboxLink> {
    const at = new Date(this.now()).toISOString();
    const link: MailboxLink = { ...input, unreadVoice: input.unreadVoice ?? 0, createdAt: at, updatedAt: at };
    const voiceKey = { pk: `voice|${keyOf(link.endpointId)}`, rk: keyOf(link.voiceMailbox.toLowerCase()), side: `voice mailbox ${link.voiceMailbox} on ${link.endpointId}` };
    const userKey = { pk: `user|${keyOf(link.tenantId)}`, rk: keyOf(link.userId), side: `Exchange user ${link.upn ?? link.userId}` };
    await this.claimIndex(voiceKey, link.linkId);
    try {
      await this.claimIndex(userKey, link.linkId);
    } catch (e) {
      await this.releaseIndex(voiceKey, link.linkId);
      throw e;
    }
    const c = await this.tables.client("links");
    if (needsFastCheck(link)) { await this.setFastListed(link.linkId, true); link.fastListed = true; }
    try {
      const r = await guard(() => c.createEntity(linkEntity(link)));
      return { ...link, etag: r.etag };
    } catch (e) {
      await this.releaseIndex(userKey, link.linkId);
      await this.releaseIndex(voiceKey, link.linkId);
      if (isConnectorError(e, "STATE_CONFLICT")) throw new ConnectorError("CONFLICT", `link ${link.linkId} already exists`, { mailboxId: link.linkId });
      throw e;
    }
  }

  async claimIndex(k: { pk: string; rk: string; side: string }, linkId: string): Promise<void> {
    const c = await this.tables.client("index");
    try {
      await guard(() => c.createEntity(entity(k.pk, k.rk, { linkId })));
      return;
    } catch (e) {
      if (!isConnectorError(e, "STATE_CONFLICT")) throw e;
    }
    const existing = await getOrUndefined(c, k.pk, k.rk);
    const holder = existing && str(existing, "linkId");
    if (existing && holder && holder !== linkId && (await this.getLink(holder))) {
      throw new ConnectorError("CONFLICT", `${k.side} is already linked (link ${holder})`, { mailboxId: holder });
    }
    if (!existing) return this.claimIndex(k, linkId);
    // Orphan from a crashed create (or our own row): take it over if nobody else did meanwhile.
    await guard(() => c.updateEntity(entity(k.pk, k.rk, { linkId }), "Replace", { etag: existing.etag }));
  }

  async releaseIndex(k: { pk: string; rk: string }, linkId: string): Promise<void> {
    const c = await this.tables.client("index");
    const row = await getOrUndefined(c, k.pk, k.rk);
    if (row && str(row, "linkId") === linkId) await guard(() => c.deleteEntity(k.pk, k.rk, { etag: row.etag })).catch(() => undefined);
  }

  async getLink(linkId: string): Promise<MailboxLink | undefined> {
    const row = await getOrUndefined(await this.tables.client("links"), "link", keyOf(linkId));
    return row && toLink(row);
  }

  /** `fastCheck`: links with unread voicemail or without a working subscription (the fast check's work);
   *  `buckets`: links whose bucket is in [from, to) (one shard of a timer's fan-out). */
  async listLinks(filter: { tenantId?: string; state?: LinkState; withUnreadVoice?: boolean; fastCheck?: boolean; buckets?: [number, number] } = {}): Promise<MailboxLink[]> {
    const c = await this.tables.client("links");
    const clauses = ["PartitionKey eq 'link'"];
    if (filter.buckets) clauses.push(`bucket ge ${filter.buckets[0]} and bucket lt ${filter.buckets[1]}`);
    if (filter.tenantId) clauses.push(`tenantId eq '${filter.tenantId.replace(/'/g, "''")}'`);
    if (filter.state) clauses.push(`state eq '${filter.state}'`);
    if (filter.withUnreadVoice) clauses.push("unreadVoice gt 0");
    if (filter.fastCheck) clauses.push("(unreadVoice gt 0 or subscriptionFallback eq true)");
    const out: MailboxLink[] = [];
    await guard(async () => { for await (const row of listRows(c, clauses.join(" and "))) out.push(toLink(row)); });
    return out;
  }

  /** Link ids in the fast-check list whose bucket is in [from, to): a small list (links with
   *  unread voicemail or without a working subscription), read instead of every link. */
  async listFastLinks(buckets: [number, number]): Promise<string[]> {
    const c = await this.tables.client("runs");
    const out: string[] = [];
    // Rows whose window ended are left out by the query: at 1,000 links with unread voicemail
    // from days ago, the check is not 200 runs a second.
    const now = Math.floor(this.now() / 1000);
    await guard(async () => { for await (const row of listRows(c, `PartitionKey eq 'fast' and bucket ge ${buckets[0]} and bucket lt ${buckets[1]} and until ge ${now}`, ["linkId"])) { const id = str(row, "linkId"); if (id) out.push(id); } });
    return out;
  }

  /**
   * Link rows written before buckets existed get theirs, and the fast-check list its rows: one
   * listing of every link, once (the fan-out runs it while the marker row is missing).
   */
  async backfillScheduleRows(): Promise<number> {
    const runs = await this.tables.client("runs");
    if (await getOrUndefined(runs, "schedule", "backfilled")) return 0;
    let n = 0;
    for (const l of await this.listLinks({})) {
      await this.modifyLink(l.linkId, (x) => x); // rewrites the bucket and the fast-check row
      n++;
    }
    const subs = await this.tables.client("subs");
    await guard(async () => {
      for await (const row of listRows(subs, "PartitionKey eq 'sub'")) {
        const linkId = str(row, "linkId");
        if (linkId && num(row, "bucket") === undefined) await subs.updateEntity({ partitionKey: "sub", rowKey: row.rowKey!, bucket: linkBucket(linkId) }, "Merge");
      }
    });
    await guard(() => runs.upsertEntity(entity("schedule", "backfilled", { at: this.now(), links: n }), "Replace"));
    return n;
  }

  async findLinkByVoice(endpointId: string, voiceMailbox: string): Promise<MailboxLink | undefined> {
    const row = await getOrUndefined(await this.tables.client("index"), `voice|${keyOf(endpointId)}`, keyOf(voiceMailbox.toLowerCase()));
    const id = row && str(row, "linkId");
    return id ? this.getLink(id) : undefined;
  }

  async findLinkByUser(tenantId: string, userId: string): Promise<MailboxLink | undefined> {
    const row = await getOrUndefined(await this.tables.client("index"), `user|${keyOf(tenantId)}`, keyOf(userId));
    const id = row && str(row, "linkId");
    return id ? this.getLink(id) : undefined;
  }

  /** Writes a changed link; fails with STATE_CONFLICT when it changed since it was read. */
  async updateLink(link: MailboxLink): Promise<MailboxLink> {
    if (!link.etag) throw new ConnectorError("INTERNAL", "updateLink needs the etag it was read with");
    const c = await this.tables.client("links");
    // The fast-check list follows the link: its row is written before the link says so (a
    // failed link write leaves at most a stale row, which the fast check reads past).
    const fast = needsFastCheck(link);
    const until = fast ? fastRowUntil(link) : undefined;
    if (fast !== Boolean(link.fastListed) || until !== link.fastListedUntil) await this.setFastListed(link.linkId, fast, until);
    const next = { ...link, fastListed: fast || undefined, fastListedUntil: until, updatedAt: new Date(this.now()).toISOString() };
    const r = await guard(() => c.updateEntity(linkEntity(next), "Replace", { etag: link.etag }), { mailboxId: link.linkId });
    return { ...next, etag: r.etag };
  }

  private async setFastListed(linkId: string, on: boolean, until = FAST_ALWAYS): Promise<void> {
    const c = await this.tables.client("runs");
    if (on) await guard(() => c.upsertEntity(entity("fast", keyOf(linkId), { linkId, bucket: linkBucket(linkId), until }), "Replace"));
    else await guard(() => c.deleteEntity("fast", keyOf(linkId))).catch((e) => { if (!isConnectorError(e, "NOT_FOUND")) throw e; });
  }

  /** Reads, changes and writes a link, retrying when another writer got there first. */
  async modifyLink(linkId: string, change: (l: MailboxLink) => MailboxLink): Promise<MailboxLink> {
    for (let attempt = 0; ; attempt++) {
      const current = await this.getLink(linkId);
      if (!current) throw new ConnectorError("NOT_FOUND", `no link ${linkId}`, { mailboxId: linkId });
      try {
        return await this.updateLink(change(current));
      } catch (e) {
        if (!isConnectorError(e, "STATE_CONFLICT") || attempt >= 5) throw e;
      }
    }
  }

  /** Removes a link, its index rows, cursors and item states. */
  async deleteLink(linkId: string): Promise<void> {
    const link = await this.getLink(linkId);
    if (!link) return;
    for (const kind of ["contacts", "calendar"]) {
      const c = await this.tables.client("records");
      await guard(async () => {
        for await (const row of c.listEntities({ queryOptions: { filter: `PartitionKey eq '${keyOf(`${linkId}|${kind}`)}'`, select: ["RowKey"] } })) await c.deleteEntity(keyOf(`${linkId}|${kind}`), row.rowKey!);
      });
    }
    for (const table of ["items", "cursors", "conflicts"]) {
      const c = await this.tables.client(table);
      await guard(async () => {
        for await (const row of c.listEntities({ queryOptions: { filter: `PartitionKey eq '${keyOf(linkId)}'`, select: ["RowKey"] } })) await c.deleteEntity(keyOf(linkId), row.rowKey!);
      });
    }
    await this.setFastListed(linkId, false);
    await guard(async () => (await this.tables.client("links")).deleteEntity("link", keyOf(linkId)));
    await this.releaseIndex({ pk: `voice|${keyOf(link.endpointId)}`, rk: keyOf(link.voiceMailbox.toLowerCase()) }, linkId);
    await this.releaseIndex({ pk: `user|${keyOf(link.tenantId)}`, rk: keyOf(link.userId) }, linkId);
  }

  // ---- Entra groups linked automatically (src/admin/groupLinks.ts) -----------------------

  /** A group whose members are linked: where to, with which profile, and its members' deltaLink. */
  async putGroupBinding(b: GroupBinding): Promise<void> {
    const c = await this.tables.client("cursors");
    await guard(() => c.upsertEntity(entity("groups", keyOf(`${b.tenantId}|${b.groupId}`), { tenantId: b.tenantId, groupId: b.groupId, endpointId: b.endpointId, profileId: b.profileId, deltaLink: b.deltaLink, savedAt: new Date(this.now()).toISOString() }), "Replace"));
  }

  async listGroupBindings(): Promise<GroupBinding[]> {
    const c = await this.tables.client("cursors");
    const out: GroupBinding[] = [];
    await guard(async () => {
      for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: "PartitionKey eq 'groups'" } })) {
        const r = row as Row;
        out.push({ tenantId: str(r, "tenantId")!, groupId: str(r, "groupId")!, endpointId: str(r, "endpointId")!, profileId: str(r, "profileId")!, deltaLink: str(r, "deltaLink") });
      }
    });
    return out;
  }

  /** The voice mailbox of each SMTP address (the store's mailbox list or the admin's CSV map), one row each. */
  async putMailboxMap(endpointId: string, rows: Array<{ smtp: string; voiceMailbox: string }>): Promise<void> {
    const c = await this.tables.client("cursors");
    for (const r of rows) await guard(() => c.upsertEntity(entity(`mailboxmap|${keyOf(endpointId)}`, keyOf(r.smtp.toLowerCase()), { voiceMailbox: r.voiceMailbox }), "Replace"));
  }

  async lookupMailboxMap(endpointId: string, smtp: string): Promise<string | undefined> {
    const row = await getOrUndefined(await this.tables.client("cursors"), `mailboxmap|${keyOf(endpointId)}`, keyOf(smtp.toLowerCase()));
    return row ? str(row, "voiceMailbox") : undefined;
  }
}

// ---- entity mapping, in one place --------------------------------------------------------

function toTenant(row: Row): Tenant {
  return {
    tenantId: str(row, "tenantId") ?? row.rowKey!,
    displayName: str(row, "displayName"),
    consentedAt: str(row, "consentedAt"),
    consentStartedBy: str(row, "consentStartedBy"),
    grantedRoles: JSON.parse(str(row, "grantedRoles") ?? "[]") as string[],
    status: str(row, "status") === "revoked" ? "revoked" : "active",
  };
}

/** Buckets links are spread over (a shard of the timers' fan-out is a range of them). */
export const LINK_BUCKETS = 1024;

/** A link's bucket: FNV-1a of its id, so that links spread evenly whatever their ids look like. */
export function linkBucket(linkId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < linkId.length; i++) { h ^= linkId.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
  return h % LINK_BUCKETS;
}

/** A fast-check row without a window end (int32 seconds: the Table filter compares it with an integer). */
const FAST_ALWAYS = 2_147_483_647;

/**
 * Until when the fast read check looks at a link: always while a kind has no working
 * subscription (it stands in for the notifications); otherwise for its window after its last
 * change, when an Outlook read whose notification was lost is likely. Later the minute poll
 * (which reads the same delta) carries it.
 */
function fastRowUntil(l: Pick<MailboxLink, "subscriptionFallback" | "fastUntil">): number {
  return l.subscriptionFallback || l.fastUntil === undefined ? FAST_ALWAYS : l.fastUntil;
}

/** The fast read check looks at enabled links with unread voicemail or without a working subscription. */
export function needsFastCheck(l: Pick<MailboxLink, "state" | "unreadVoice" | "subscriptionFallback">): boolean {
  return l.state === "enabled" && (l.unreadVoice > 0 || !!l.subscriptionFallback);
}

function linkEntity(l: MailboxLink) {
  return entity("link", keyOf(l.linkId), {
    linkId: l.linkId, tenantId: l.tenantId, endpointId: l.endpointId, voiceMailbox: l.voiceMailbox, userId: l.userId, upn: l.upn,
    profileId: l.profileId, state: l.state, createdAt: l.createdAt, updatedAt: l.updatedAt, lastSyncAt: l.lastSyncAt,
    lastErrorCode: l.lastError?.code, lastErrorMessage: l.lastError?.message.slice(0, 1000), lastErrorAt: l.lastError?.at, unreadVoice: l.unreadVoice,
    skippedItems: l.skippedItems, readDriftTotal: l.readDriftTotal, kinds: l.kinds ? JSON.stringify(l.kinds) : undefined,
    failureStreak: l.failureStreak, massDeleteAllowed: l.massDeleteAllowed ? JSON.stringify(l.massDeleteAllowed) : undefined,
    profileOverride: l.profileOverride ? JSON.stringify(l.profileOverride) : undefined,
    throttled: l.throttled ? JSON.stringify(l.throttled) : undefined,
    subscriptions: l.subscriptions ? JSON.stringify(l.subscriptions) : undefined, subscriptionFallback: l.subscriptionFallback,
    adoptRequested: l.adoptRequested, userGone: l.userGone ? JSON.stringify(l.userGone) : undefined,
    bucket: linkBucket(l.linkId), fastListed: l.fastListed, fastUntil: l.fastUntil, fastListedUntil: l.fastListedUntil,
  });
}

function toLink(row: Row): MailboxLink {
  const code = str(row, "lastErrorCode");
  return {
    linkId: str(row, "linkId")!, tenantId: str(row, "tenantId")!, endpointId: str(row, "endpointId")!, voiceMailbox: str(row, "voiceMailbox")!,
    userId: str(row, "userId")!, upn: str(row, "upn"), profileId: str(row, "profileId") ?? "default",
    state: (str(row, "state") as LinkState | undefined) ?? "enabled", createdAt: str(row, "createdAt")!, updatedAt: str(row, "updatedAt")!,
    lastSyncAt: str(row, "lastSyncAt"),
    lastError: code ? { code, message: str(row, "lastErrorMessage") ?? "", at: str(row, "lastErrorAt") ?? "" } : undefined,
    unreadVoice: num(row, "unreadVoice") ?? 0, skippedItems: num(row, "skippedItems"), readDriftTotal: num(row, "readDriftTotal"),
    kinds: str(row, "kinds") ? (JSON.parse(str(row, "kinds")!) as MailboxLink["kinds"]) : undefined,
    failureStreak: num(row, "failureStreak"),
    massDeleteAllowed: str(row, "massDeleteAllowed") ? (JSON.parse(str(row, "massDeleteAllowed")!) as MailboxLink["massDeleteAllowed"]) : undefined,
    profileOverride: str(row, "profileOverride") ? (JSON.parse(str(row, "profileOverride")!) as Record<string, unknown>) : undefined,
    throttled: str(row, "throttled") ? (JSON.parse(str(row, "throttled")!) as MailboxLink["throttled"]) : undefined,
    subscriptions: str(row, "subscriptions") ? (JSON.parse(str(row, "subscriptions")!) as MailboxLink["subscriptions"]) : undefined,
    subscriptionFallback: bool(row, "subscriptionFallback") || undefined, etag: row.etag,
    fastListed: bool(row, "fastListed") || undefined, fastUntil: num(row, "fastUntil"), fastListedUntil: num(row, "fastListedUntil"),
    adoptRequested: str(row, "adoptRequested"), userGone: str(row, "userGone") ? (JSON.parse(str(row, "userGone")!) as MailboxLink["userGone"]) : undefined,
  };
}
