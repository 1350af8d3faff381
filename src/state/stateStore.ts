/**
 * The state store: everything the connector remembers lives in Azure Table Storage.
 *
 * Tables (all prefixed, e.g. "umc"):
 *   tenants   PK "tenant"  RK tenantId                 consented tenants
 *   links     PK "link"    RK linkId                   voice mailbox <-> Exchange mailbox
 *   index     PK "voice|<endpoint>" / "user|<tenant>"  uniqueness of each link side
 *   cursors   PK linkId    RK resource                 IMAP and Graph cursors
 *   items     PK linkId    RK syncKey                  per-item three-way state (voicemail)
 *   records   PK linkId|kind RK syncKey               contacts / calendar item state (JSON)
 *   conflicts PK linkId    RK syncKey|time             losing versions of edit/edit conflicts
 *   subs      PK "sub"     RK subscriptionId           Graph subscriptions
 *             PK "lifetime" RK tenantId               subscription lifetime a tenant accepts
 *   leases    PK "lease"   RK key                      one writer per mailbox
 *   runs      PK "run"     RK linkId                   coalesced follow-up requests
 *   nonces    PK "nonce"   RK nonce                    single-use consent states
 * Links live in one partition so a link can be found by id alone (webhooks carry only the
 * link id); a few thousand rows per tenant are well within one partition's limits
 * (https://learn.microsoft.com/en-us/azure/storage/tables/scalability-targets).
 */
import crypto from "node:crypto";
import { ConnectorError, isConnectorError } from "../errors.js";
import type { ImapCursor, ItemRecord, SyncCursors, VoicemailStatePort } from "../sync/ports.js";
import { bool, entity, getOrUndefined, guard, keyOf, num, str, Tables, type Row, type StorageTarget } from "./tables.js";

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
  kinds?: Partial<Record<"contacts" | "calendar" | "location", KindStatus>>;
  /** Voicemail runs that failed in a row (alerts when a user keeps failing). */
  failureStreak?: number;
  /** An administrator allowed the next run of these kinds to apply a mass delete (ISO time of the decision). */
  massDeleteAllowed?: Partial<Record<"voicemail" | "contacts" | "calendar", string>>;
  /** Runs Graph throttled (429) and put off, in total, and when that last happened. */
  throttled?: { count: number; lastAt: string };
  /** This user's departures from the link's feature profile (validated when set). */
  profileOverride?: Record<string, unknown>;
  /** Graph subscription upkeep per kind (src/app/subscriptions.ts): its state and last error. */
  subscriptions?: Partial<Record<"voicemail" | "contacts" | "calendar", SubscriptionHealth>>;
  /** Some kind has no working subscription: the fast check polls the link meanwhile. */
  subscriptionFallback?: boolean;
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
}

export interface SubscriptionRecord {
  subscriptionId: string;
  linkId: string;
  tenantId: string;
  resource: string;
  expiresAt: string;
  status: "active" | "failed";
  /** The clientState nonce this subscription was created with (absent: made before nonces). */
  nonce?: string;
  createdAt?: string;
}

export interface Lease {
  key: string;
  owner: string;
  expiresAt: number;
  etag: string;
}

/** Largest string a Table property holds is 64 KiB (32K UTF-16 characters). */
const MAX_STRING = 32_000;

export interface RecordStatePort<T, C> {
  loadItems(): Promise<T[]>;
  putItem(item: T): Promise<void>;
  deleteItem(syncKey: string): Promise<void>;
  loadCursors(): Promise<C | undefined>;
  saveCursors(cursors: C): Promise<void>;
}

/** An alert the alerts timer has seen: when it was raised, told, and (once gone) resolved. */
export interface AlertRecord {
  key: string;
  code: string;
  severity: "warning" | "critical";
  linkId?: string;
  /** Alerts about a voice store as a whole (one per endpoint, not per link). */
  endpointId?: string;
  tenantId?: string;
  text: string;
  firstSeen: string;
  /** When the last notice about it went out; absent while one is owed. */
  notifiedAt?: string;
  /** Set when the condition cleared; the row goes once the "resolved" notice is out. */
  resolvedAt?: string;
}

export interface GroupBinding { tenantId: string; groupId: string; endpointId: string; profileId: string; deltaLink?: string }

export interface ConflictRecord {
  syncKey: string;
  at: string;
  /** "contact": an edit/edit conflict; "voicemail-match": adoption found no single partner (copied, nothing merged). */
  kind: "contact" | "voicemail-match" | "contact-match";
  /** The side whose version lost (and is kept here); "none" when nothing was overwritten. */
  loser: "imap" | "graph" | "none";
  /** The losing version, as a vCard; for a match, the candidates and the reason as JSON. */
  content: string;
  /** A display name for the admin (no other content). */
  summary?: string;
}

export class StateStore {
  private readonly tables: Tables;
  constructor(target: StorageTarget, private readonly now: () => number = Date.now) {
    this.tables = new Tables(target);
  }

  /** The table clients, for stores of their own rows (src/state/storeAccessState.ts). */
  get tableClients(): Tables { return this.tables; }

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

  private async claimIndex(k: { pk: string; rk: string; side: string }, linkId: string): Promise<void> {
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

  private async releaseIndex(k: { pk: string; rk: string }, linkId: string): Promise<void> {
    const c = await this.tables.client("index");
    const row = await getOrUndefined(c, k.pk, k.rk);
    if (row && str(row, "linkId") === linkId) await guard(() => c.deleteEntity(k.pk, k.rk, { etag: row.etag })).catch(() => undefined);
  }

  async getLink(linkId: string): Promise<MailboxLink | undefined> {
    const row = await getOrUndefined(await this.tables.client("links"), "link", keyOf(linkId));
    return row && toLink(row);
  }

  /** `fastCheck`: links with unread voicemail or without a working subscription (the fast check's work). */
  async listLinks(filter: { tenantId?: string; state?: LinkState; withUnreadVoice?: boolean; fastCheck?: boolean } = {}): Promise<MailboxLink[]> {
    const c = await this.tables.client("links");
    const clauses = ["PartitionKey eq 'link'"];
    if (filter.tenantId) clauses.push(`tenantId eq '${filter.tenantId.replace(/'/g, "''")}'`);
    if (filter.state) clauses.push(`state eq '${filter.state}'`);
    if (filter.withUnreadVoice) clauses.push("unreadVoice gt 0");
    if (filter.fastCheck) clauses.push("(unreadVoice gt 0 or subscriptionFallback eq true)");
    const out: MailboxLink[] = [];
    await guard(async () => { for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: clauses.join(" and ") } })) out.push(toLink(row as Row)); });
    return out;
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
    const next = { ...link, updatedAt: new Date(this.now()).toISOString() };
    const r = await guard(() => c.updateEntity(linkEntity(next), "Replace", { etag: link.etag }), { mailboxId: link.linkId });
    return { ...next, etag: r.etag };
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

  // ---- per-link voicemail state (items + cursors) -------------------------------------

  /** The sync core's view of one link's state. The caller holds the link's lease. */
  voicemailState(linkId: string): VoicemailStatePort {
    const pk = keyOf(linkId);
    const ids = { mailboxId: linkId };
    return {
      loadItems: async () => {
        const c = await this.tables.client("items");
        const out: ItemRecord[] = [];
        await guard(async () => { for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${pk}'` } })) out.push(toItem(row as Row)); }, ids);
        return out;
      },
      putItem: async (item) => {
        const c = await this.tables.client("items");
        await guard(() => c.upsertEntity(itemEntity(pk, item), "Replace"), ids);
      },
      deleteItem: async (syncKey) => {
        const c = await this.tables.client("items");
        try {
          await guard(() => c.deleteEntity(pk, keyOf(syncKey)), ids);
        } catch (e) {
          if (!isConnectorError(e, "NOT_FOUND")) throw e;
        }
      },
      loadCursors: async () => {
        const row = await getOrUndefined(await this.tables.client("cursors"), pk, "voicemail");
        if (!row) return {};
        const uidValidity = num(row, "imapUidValidity");
        const imap: ImapCursor | undefined = uidValidity === undefined ? undefined : { uidValidity, highestModseq: str(row, "imapHighestModseq"), uidNext: num(row, "imapUidNext") };
        return { imap, deltaLink: str(row, "deltaLink") } satisfies SyncCursors;
      },
      saveCursors: async (cursors) => {
        if ((cursors.deltaLink?.length ?? 0) > MAX_STRING) throw new ConnectorError("INTERNAL", "deltaLink longer than a table property holds", ids);
        const c = await this.tables.client("cursors");
        await guard(() => c.upsertEntity(entity(pk, "voicemail", {
          imapUidValidity: cursors.imap?.uidValidity, imapHighestModseq: cursors.imap?.highestModseq, imapUidNext: cursors.imap?.uidNext,
          deltaLink: cursors.deltaLink, savedAt: new Date(this.now()).toISOString(),
        }), "Replace"), ids);
      },
    };
  }

  // ---- per-link contacts / calendar state -----------------------------------------------

  /**
   * Item records of one kind for one link, as JSON (the records are small and their shape
   * belongs to the sync core of that kind), with the kind's cursor row. The caller holds the
   * link's lease for that kind.
   */
  recordState<T extends { syncKey: string }, C extends object>(linkId: string, kind: "contacts" | "calendar"): RecordStatePort<T, C> {
    const pk = keyOf(`${linkId}|${kind}`);
    const ids = { mailboxId: linkId };
    return {
      loadItems: async () => {
        const c = await this.tables.client("records");
        const out: T[] = [];
        await guard(async () => { for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${pk}'` } })) out.push(JSON.parse(String(row.data)) as T); }, ids);
        return out;
      },
      putItem: async (item) => {
        const data = JSON.stringify(item);
        if (data.length > MAX_STRING) throw new ConnectorError("INTERNAL", "item record longer than a table property holds", ids);
        const c = await this.tables.client("records");
        await guard(() => c.upsertEntity(entity(pk, keyOf(item.syncKey), { data }), "Replace"), ids);
      },
      deleteItem: async (syncKey) => {
        const c = await this.tables.client("records");
        await guard(() => c.deleteEntity(pk, keyOf(syncKey)), ids).catch((e) => { if (!isConnectorError(e, "NOT_FOUND")) throw e; });
      },
      loadCursors: async () => {
        const row = await getOrUndefined(await this.tables.client("cursors"), keyOf(linkId), kind);
        return row?.data ? (JSON.parse(String(row.data)) as C) : undefined;
      },
      saveCursors: async (cursors) => {
        const data = JSON.stringify(cursors);
        if (data.length > MAX_STRING) throw new ConnectorError("INTERNAL", "cursors longer than a table property holds", ids);
        const c = await this.tables.client("cursors");
        await guard(() => c.upsertEntity(entity(keyOf(linkId), kind, { data, savedAt: new Date(this.now()).toISOString() }), "Replace"), ids);
      },
    };
  }

  /** Keeps the losing version of an edit/edit conflict (nothing is lost; the admin can restore it). */
  async putConflict(linkId: string, c: ConflictRecord): Promise<void> {
    const client = await this.tables.client("conflicts");
    const content = c.content.length > MAX_STRING ? c.content.slice(0, MAX_STRING) : c.content;
    // Keyed by content: a run repeated after a crash records the same losing version once.
    const rk = keyOf(`${c.syncKey}|${crypto.createHash("sha256").update(c.content).digest("base64url").slice(0, 16)}`);
    try {
      await guard(() => client.createEntity(entity(keyOf(linkId), rk, { ...c, content, truncated: c.content.length > MAX_STRING })), { mailboxId: linkId });
    } catch (e) {
      if (!isConnectorError(e, "STATE_CONFLICT")) throw e;
    }
  }

  async listConflicts(linkId: string): Promise<ConflictRecord[]> {
    const client = await this.tables.client("conflicts");
    const out: ConflictRecord[] = [];
    await guard(async () => {
      for await (const row of client.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${keyOf(linkId)}'` } })) {
        out.push({ syncKey: String(row.syncKey), at: String(row.at), kind: row.kind as ConflictRecord["kind"], loser: row.loser as ConflictRecord["loser"], content: String(row.content), summary: str(row as Row, "summary") });
      }
    });
    return out.sort((a, b) => a.at.localeCompare(b.at));
  }

  // ---- configuration (endpoints and profiles; secrets are only named) ---------------------

  async listConfig(kind: "endpoint" | "profile"): Promise<unknown[]> {
    const c = await this.tables.client("config");
    const out: unknown[] = [];
    await guard(async () => {
      for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${kind}'` } })) out.push(JSON.parse(String(row.data)));
    });
    return out;
  }

  async putConfig(kind: "endpoint" | "profile", id: string, data: unknown): Promise<void> {
    const c = await this.tables.client("config");
    await guard(() => c.upsertEntity(entity(kind, keyOf(id), { data: JSON.stringify(data), updatedAt: new Date(this.now()).toISOString() }), "Replace"));
  }

  async deleteConfig(kind: "endpoint" | "profile", id: string): Promise<boolean> {
    const c = await this.tables.client("config");
    try {
      await guard(() => c.deleteEntity(kind, keyOf(id)));
      return true;
    } catch (e) {
      if (isConnectorError(e, "NOT_FOUND")) return false;
      throw e;
    }
  }

  // ---- alerts --------------------------------------------------------------------------

  async listAlerts(): Promise<AlertRecord[]> {
    const c = await this.tables.client("alerts");
    const out: AlertRecord[] = [];
    await guard(async () => {
      for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: "PartitionKey eq 'alert'" } })) {
        out.push(JSON.parse(String(row.data)) as AlertRecord);
      }
    });
    return out;
  }

  async putAlert(a: AlertRecord): Promise<void> {
    const c = await this.tables.client("alerts");
    await guard(() => c.upsertEntity(entity("alert", keyOf(a.key), { data: JSON.stringify(a) }), "Replace"));
  }

  async deleteAlert(key: string): Promise<void> {
    const c = await this.tables.client("alerts");
    try {
      await guard(() => c.deleteEntity("alert", keyOf(key)));
    } catch (e) {
      if (!isConnectorError(e, "NOT_FOUND")) throw e;
    }
  }

  // ---- subscriptions -------------------------------------------------------------------

  async putSubscription(s: SubscriptionRecord): Promise<void> {
    const c = await this.tables.client("subs");
    await guard(() => c.upsertEntity(entity("sub", keyOf(s.subscriptionId), { ...s }), "Replace"));
  }

  async getSubscription(subscriptionId: string): Promise<SubscriptionRecord | undefined> {
    const row = await getOrUndefined(await this.tables.client("subs"), "sub", keyOf(subscriptionId));
    return row && toSub(row);
  }

  async listSubscriptions(filter: { linkId?: string; expiringBefore?: Date } = {}): Promise<SubscriptionRecord[]> {
    const c = await this.tables.client("subs");
    const clauses = ["PartitionKey eq 'sub'"];
    if (filter.linkId) clauses.push(`linkId eq '${filter.linkId.replace(/'/g, "''")}'`);
    // ISO-8601 UTC strings compare in time order.
    if (filter.expiringBefore) clauses.push(`expiresAt lt '${filter.expiringBefore.toISOString()}'`);
    const out: SubscriptionRecord[] = [];
    await guard(async () => { for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: clauses.join(" and ") } })) out.push(toSub(row as Row)); });
    return out;
  }

  async deleteSubscription(subscriptionId: string): Promise<void> {
    const c = await this.tables.client("subs");
    await guard(() => c.deleteEntity("sub", keyOf(subscriptionId))).catch((e) => { if (!isConnectorError(e, "NOT_FOUND")) throw e; });
  }

  /** The subscription lifetime (minutes) a tenant's Graph accepted last, if it ever refused more. */
  async getSubscriptionMinutes(tenantId: string): Promise<number | undefined> {
    const row = await getOrUndefined(await this.tables.client("subs"), "lifetime", keyOf(tenantId));
    return row ? num(row, "minutes") : undefined;
  }

  async putSubscriptionMinutes(tenantId: string, minutes: number): Promise<void> {
    const c = await this.tables.client("subs");
    await guard(() => c.upsertEntity(entity("lifetime", keyOf(tenantId), { tenantId, minutes }), "Replace"));
  }

  // ---- leases ----------------------------------------------------------------------------

  /**
   * Takes the lease or throws LEASE_HELD (transient, retryAfterSeconds = time left). Creating
   * the row, or replacing an expired one with its ETag, is atomic in Table Storage, so two
   * workers racing for a free or expired lease cannot both win.
   */
  async acquireLease(key: string, owner: string, ttlSeconds: number): Promise<Lease> {
    const c = await this.tables.client("leases");
    const rk = keyOf(key);
    const expiresAt = this.now() + ttlSeconds * 1000;
    const row = await getOrUndefined(c, "lease", rk);
    try {
      if (!row) {
        const r = await guard(() => c.createEntity(entity("lease", rk, { owner, expiresAt })));
        return { key, owner, expiresAt, etag: r.etag! };
      }
      const heldUntil = num(row, "expiresAt") ?? 0;
      if (heldUntil > this.now() && str(row, "owner") !== owner) {
        throw new ConnectorError("LEASE_HELD", `mailbox ${key} is being synced by another worker`, { mailboxId: key, retryAfterSeconds: Math.ceil((heldUntil - this.now()) / 1000) });
      }
      const r = await guard(() => c.updateEntity(entity("lease", rk, { owner, expiresAt }), "Replace", { etag: row.etag }));
      return { key, owner, expiresAt, etag: r.etag! };
    } catch (e) {
      if (isConnectorError(e, "STATE_CONFLICT")) throw new ConnectorError("LEASE_HELD", `mailbox ${key} was taken by another worker`, { mailboxId: key, retryAfterSeconds: 1 });
      throw e;
    }
  }

  /** Extends a lease we hold; STATE_CONFLICT when it was lost (expired and taken over). */
  async renewLease(lease: Lease, ttlSeconds: number): Promise<Lease> {
    const c = await this.tables.client("leases");
    const expiresAt = this.now() + ttlSeconds * 1000;
    const r = await guard(() => c.updateEntity(entity("lease", keyOf(lease.key), { owner: lease.owner, expiresAt }), "Replace", { etag: lease.etag }), { mailboxId: lease.key });
    return { ...lease, expiresAt, etag: r.etag! };
  }

  /** Releases a lease we hold; a lease someone else took over is left alone. */
  async releaseLease(lease: Lease): Promise<void> {
    const c = await this.tables.client("leases");
    try {
      await guard(() => c.deleteEntity("lease", keyOf(lease.key), { etag: lease.etag }), { mailboxId: lease.key });
    } catch (e) {
      if (!isConnectorError(e, "STATE_CONFLICT") && !isConnectorError(e, "NOT_FOUND")) throw e;
    }
  }

  // ---- coalesced run requests ----------------------------------------------------------

  /**
   * Marks a run as wanted. `full` (a reconcile or a missed-notification resync) sticks until
   * taken: Merge keeps an earlier `full` when a plain request follows it.
   */
  async requestRun(linkId: string, full = false): Promise<void> {
    const c = await this.tables.client("runs");
    await guard(() => c.upsertEntity(entity("run", keyOf(linkId), { requested: true, at: this.now(), ...(full ? { full: true } : {}) }), "Merge"));
  }

  /** Clears the request mark: "none", or the run wanted. ETag-safe against a concurrent request. */
  async takeRunRequest(linkId: string): Promise<"none" | "run" | "full"> {
    const c = await this.tables.client("runs");
    for (let attempt = 0; attempt < 5; attempt++) {
      const row = await getOrUndefined(c, "run", keyOf(linkId));
      if (!row || !bool(row, "requested")) return "none";
      try {
        await guard(() => c.deleteEntity("run", keyOf(linkId), { etag: row.etag }));
        return bool(row, "full") ? "full" : "run";
      } catch (e) {
        if (isConnectorError(e, "NOT_FOUND")) return "none";
        if (!isConnectorError(e, "STATE_CONFLICT")) throw e;
      }
    }
    return "full";
  }

  /**
   * Marks a run of `key` as queued; false when one is already queued and younger than
   * `maxAgeSeconds` (the caller then need not enqueue another). A mark older than that is
   * taken over (ETag-guarded): a message lost or stuck in a backlog does not block new ones.
   */
  async markQueued(key: string, maxAgeSeconds: number): Promise<boolean> {
    const c = await this.tables.client("runs");
    const rk = keyOf(key);
    try {
      await guard(() => c.createEntity(entity("queued", rk, { at: this.now() })));
      return true;
    } catch (e) {
      if (!isConnectorError(e, "STATE_CONFLICT")) throw e;
    }
    const row = await getOrUndefined(c, "queued", rk);
    if (row && this.now() - (num(row, "at") ?? 0) < maxAgeSeconds * 1000) return false;
    try {
      if (row) await guard(() => c.updateEntity(entity("queued", rk, { at: this.now() }), "Replace", { etag: row.etag }));
      else await guard(() => c.createEntity(entity("queued", rk, { at: this.now() })));
      return true;
    } catch (e) {
      if (isConnectorError(e, "STATE_CONFLICT")) return false; // another caller took it over just now
      throw e;
    }
  }

  /** A run started: notifications from now on need a new queued run. */
  async clearQueued(key: string): Promise<void> {
    const c = await this.tables.client("runs");
    await guard(() => c.deleteEntity("queued", keyOf(key))).catch((e) => { if (!isConnectorError(e, "NOT_FOUND")) throw e; });
  }

  // ---- single-use nonces (consent state) -----------------------------------------------

  async useNonceOnce(nonce: string, expiresAt: number): Promise<boolean> {
    const c = await this.tables.client("nonces");
    try {
      await guard(() => c.createEntity(entity("nonce", keyOf(nonce), { expiresAt })));
      return true;
    } catch (e) {
      if (isConnectorError(e, "STATE_CONFLICT")) return false;
      throw e;
    }
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
    adoptRequested: str(row, "adoptRequested"), userGone: str(row, "userGone") ? (JSON.parse(str(row, "userGone")!) as MailboxLink["userGone"]) : undefined,
  };
}

function itemEntity(pk: string, i: ItemRecord) {
  return entity(pk, keyOf(i.syncKey), {
    syncKey: i.syncKey, imapUid: i.imapUid, graphId: i.graphId, agreedSeen: i.agreedSeen, pendingCreate: i.pendingCreate,
    skippedCode: i.skipped?.code, skippedMessage: i.skipped?.message.slice(0, 1000),
    receivedAt: i.receivedAt, graphElsewhere: i.graphElsewhere, detached: i.detached,
  });
}

function toItem(row: Row): ItemRecord {
  const code = str(row, "skippedCode");
  return {
    syncKey: str(row, "syncKey")!, imapUid: num(row, "imapUid"), graphId: str(row, "graphId"), agreedSeen: bool(row, "agreedSeen"),
    pendingCreate: bool(row, "pendingCreate"), skipped: code ? { code, message: str(row, "skippedMessage") ?? "" } : undefined,
    receivedAt: str(row, "receivedAt"), graphElsewhere: bool(row, "graphElsewhere") || undefined, detached: str(row, "detached") as ItemRecord["detached"],
  };
}

function toSub(row: Row): SubscriptionRecord {
  return {
    subscriptionId: str(row, "subscriptionId")!, linkId: str(row, "linkId")!, tenantId: str(row, "tenantId")!, resource: str(row, "resource")!,
    expiresAt: str(row, "expiresAt")!, status: str(row, "status") === "failed" ? "failed" : "active",
    nonce: str(row, "nonce"), createdAt: str(row, "createdAt"),
  };
}
