/**
 * Rows that govern access to voice stores, shared by every instance:
 *  - credential blocks (table "credguard"): a credential the store rejected is not used again
 *    until its secret changes, a probe is due, or an operator's test login succeeds
 *    (src/app/credentialGate.ts);
 *  - per-link credential references (table "linkcreds"): which secret name holds a link's own
 *    password (the password itself lives in Key Vault or the local secrets file, never here);
 *  - connection-budget slots (table "connbudget"): leases counted against a store's per-user
 *    and per-address connection limits (src/app/connectionBudget.ts).
 * Concurrency by ETag, as the mailbox leases in stateStore.ts: creating a row, or replacing one
 * with its ETag, is atomic in Table Storage, so two instances can never both win.
 */
import { ConnectorError, isConnectorError } from "../errors.js";
import { entity, getOrUndefined, guard, keyOf, num, str, type Row } from "./tables.js";
import type { StateStore } from "./stateStore.js";

/** Blind inserts at random slots before a budget's slots are listed (src/app/connectionBudget.ts). */
const BLIND_PROBES = 3;

export interface CredentialBlock {
  /** "endpoint:<id>" for an endpoint's super user, "link:<linkId>" for a link's own password. */
  key: string;
  endpointId: string;
  linkId?: string;
  /** A short fingerprint of the rejected secret (32 bits: tells a changed secret, never the secret). */
  fingerprint: string;
  /** doubtful: one ambiguous refusal seen, backing off; blocked: rejected, no logins. */
  state: "doubtful" | "blocked";
  since: string;
  /** The store's answer, shortened (status text only, never what was sent). */
  answer: string;
  /** No login with this credential before this time (ms); then exactly one probe. */
  nextAttemptAt: number;
  /** Failed probes since the block began (the backoff doubles with each). */
  probes: number;
  etag?: string;
}

export interface LinkCredentialRef {
  linkId: string;
  endpointId: string;
  secretName: string;
  setAt: string;
}

export interface BudgetSlot {
  scope: string;
  slot: number;
  owner: string;
  expiresAt: number;
  etag: string;
}

export class StoreAccessState {
  constructor(private readonly state: StateStore, private readonly now: () => number = Date.now) {}

  private table(name: "credguard" | "linkcreds" | "connbudget" | "watchmarks") {
    return this.state.tableClients.client(name);
  }

  // ---- credential blocks ---------------------------------------------------------------

  async getBlock(key: string): Promise<CredentialBlock | undefined> {
    const row = await getOrUndefined(await this.table("credguard"), "cred", keyOf(key));
    return row ? toBlock(row) : undefined;
  }

  async listBlocks(): Promise<CredentialBlock[]> {
    const c = await this.table("credguard");
    const out: CredentialBlock[] = [];
    await guard(async () => { for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: "PartitionKey eq 'cred'" } })) out.push(toBlock(row as Row)); });
    return out;
  }

  /**
   * Writes a block: a new one (no etag; STATE_CONFLICT when another instance wrote one first)
   * or a change to the one read (its etag; STATE_CONFLICT when it changed since).
   */
  async putBlock(b: CredentialBlock): Promise<CredentialBlock> {
    const c = await this.table("credguard");
    const e = entity("cred", keyOf(b.key), { key: b.key, endpointId: b.endpointId, linkId: b.linkId, fingerprint: b.fingerprint, state: b.state, since: b.since, answer: b.answer.slice(0, 300), nextAttemptAt: b.nextAttemptAt, probes: b.probes });
    const r = await guard(() => (b.etag ? c.updateEntity(e, "Replace", { etag: b.etag }) : c.createEntity(e)));
    return { ...b, etag: r.etag };
  }

  /** Removes a block; with an etag only if it is still the one read. */
  async clearBlock(key: string, etag?: string): Promise<void> {
    const c = await this.table("credguard");
    try {
      await guard(() => c.deleteEntity("cred", keyOf(key), etag ? { etag } : undefined));
    } catch (e) {
      if (!isConnectorError(e, "NOT_FOUND") && !(etag && isConnectorError(e, "STATE_CONFLICT"))) throw e;
    }
  }

  // ---- per-link credential references --------------------------------------------------

  async getLinkCredential(linkId: string): Promise<LinkCredentialRef | undefined> {
    const row = await getOrUndefined(await this.table("linkcreds"), "linkcred", keyOf(linkId));
    return row ? { linkId: str(row, "linkId")!, endpointId: str(row, "endpointId")!, secretName: str(row, "secretName")!, setAt: str(row, "setAt")! } : undefined;
  }

  async putLinkCredential(r: LinkCredentialRef): Promise<void> {
    const c = await this.table("linkcreds");
    await guard(() => c.upsertEntity(entity("linkcred", keyOf(r.linkId), { ...r }), "Replace"));
  }

  async deleteLinkCredential(linkId: string): Promise<void> {
    const c = await this.table("linkcreds");
    try { await guard(() => c.deleteEntity("linkcred", keyOf(linkId))); } catch (e) { if (!isConnectorError(e, "NOT_FOUND")) throw e; }
  }

  // ---- IDLE watchers' handover marks ----------------------------------------------------

  /** What a watcher last saw of a mailbox (HIGHESTMODSEQ or UIDNEXT:EXISTS) when it stopped. */
  async getMark(key: string): Promise<string | undefined> {
    const row = await getOrUndefined(await this.table("watchmarks"), "mark", keyOf(key));
    return row ? str(row, "mark") : undefined;
  }

  async putMark(key: string, mark: string): Promise<void> {
    const c = await this.table("watchmarks");
    await guard(() => c.upsertEntity(entity("mark", keyOf(key), { mark }), "Replace"));
  }

  // ---- connection budget ---------------------------------------------------------------

  /**
   * Takes a free slot of `scope` (one of `limit`), trying them from a random start so
   * instances spread; undefined when all are held. A slot whose lease expired (its holder
   * died) is free again.
   */
  async takeSlot(scope: string, limit: number, owner: string, ttlSeconds: number): Promise<BudgetSlot | undefined> {
    const c = await this.table("connbudget");
    const pk = keyOf(scope);
    // A released slot has no row, so while the budget is far from full a random slot is most
    // likely free: a few blind inserts (one transaction each) come first. Reading the whole
    // scope (up to `limit` rows: thousands for an address budget) is left for a budget that is
    // nearly full or has expired rows to take over.
    for (let probe = 0; probe < Math.min(BLIND_PROBES, limit); probe++) {
      const slot = Math.floor(Math.random() * limit);
      const expiresAt = this.now() + ttlSeconds * 1000;
      try {
        const r = await guard(() => c.createEntity(entity(pk, String(slot), { scope, slot, owner, expiresAt })));
        return { scope, slot, owner, expiresAt, etag: r.etag! };
      } catch (err) {
        if (!isConnectorError(err, "STATE_CONFLICT")) throw err; // the slot has a row: try another
      }
    }
    const held = new Map<number, Row>();
    await guard(async () => { for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${pk}'` } })) held.set(Number(str(row as Row, "slot") ?? num(row as Row, "slot")), row as Row); });
    const start = Math.floor(Math.random() * limit);
    for (let i = 0; i < limit; i++) {
      const slot = (start + i) % limit;
      const row = held.get(slot);
      if (row && (num(row, "expiresAt") ?? 0) > this.now()) continue;
      const expiresAt = this.now() + ttlSeconds * 1000;
      const e = entity(pk, String(slot), { scope, slot, owner, expiresAt });
      try {
        const r = await guard(() => (row ? c.updateEntity(e, "Replace", { etag: row.etag }) : c.createEntity(e)));
        return { scope, slot, owner, expiresAt, etag: r.etag! };
      } catch (err) {
        if (!isConnectorError(err, "STATE_CONFLICT")) throw err; // another instance took it: try the next
      }
    }
    return undefined;
  }

  async renewSlot(s: BudgetSlot, ttlSeconds: number): Promise<BudgetSlot> {
    const c = await this.table("connbudget");
    const expiresAt = this.now() + ttlSeconds * 1000;
    const r = await guard(() => c.updateEntity(entity(keyOf(s.scope), String(s.slot), { scope: s.scope, slot: s.slot, owner: s.owner, expiresAt }), "Replace", { etag: s.etag }));
    return { ...s, expiresAt, etag: r.etag! };
  }

  async releaseSlot(s: BudgetSlot): Promise<void> {
    const c = await this.table("connbudget");
    try {
      await guard(() => c.deleteEntity(keyOf(s.scope), String(s.slot), { etag: s.etag }));
    } catch (e) {
      if (!isConnectorError(e, "STATE_CONFLICT") && !isConnectorError(e, "NOT_FOUND")) throw e;
    }
  }

  /** Slots held now (unexpired), per scope: the status page's "in use". */
  async slotsInUse(scopePrefix: string): Promise<Map<string, number>> {
    const c = await this.table("connbudget");
    const out = new Map<string, number>();
    const now = this.now();
    await guard(async () => {
      for await (const row of c.listEntities<Record<string, unknown>>()) {
        const scope = str(row as Row, "scope");
        if (!scope?.startsWith(scopePrefix) || (num(row as Row, "expiresAt") ?? 0) <= now) continue;
        out.set(scope, (out.get(scope) ?? 0) + 1);
      }
    });
    return out;
  }
}

function toBlock(row: Row): CredentialBlock {
  const state = str(row, "state");
  if (state !== "doubtful" && state !== "blocked") throw new ConnectorError("INTERNAL", `credential block ${str(row, "key")} has an unknown state`);
  return {
    key: str(row, "key")!, endpointId: str(row, "endpointId")!, linkId: str(row, "linkId"), fingerprint: str(row, "fingerprint") ?? "",
    state, since: str(row, "since")!, answer: str(row, "answer") ?? "", nextAttemptAt: num(row, "nextAttemptAt") ?? 0, probes: num(row, "probes") ?? 0, etag: row.etag,
  };
}
