/**
 * Who may write, and what is wanted: mailbox leases (one writer per mailbox and kind),
 * coalesced run requests and queued marks, single-use consent nonces.
 *
 *   leases    PK "lease"   RK key                      one writer per mailbox
 *   runs      PK "run"     RK linkId                   coalesced follow-up requests
 *             PK "queued"  RK key                      a run of this key is queued
 *             PK "echo"    RK linkId                   store writes a run is about to make (their pushes are its echo)
 *   nonces    PK "nonce"   RK nonce                    single-use consent states
 */
import { ConnectorError, isConnectorError } from "../errors.js";
import { StateRows } from "./rows.js";
import { bool, entity, getOrUndefined, guard, keyOf, num, rewriteRow, str } from "./tables.js";

export interface Lease {
  key: string;
  owner: string;
  expiresAt: number;
  etag: string;
}

/**
 * One write the connector makes on a voice store, as the store's push reports it: "flags"
 * (Dovecot reports a STORE +FLAGS as FlagsSet and FlagsClear events alike, so the direction
 * cannot be told) or "expunge".
 */
export interface StoreEcho { uid: number; kind: "flags" | "expunge" | "append" }

/**
 * One write the connector makes in Exchange, as Graph's change notification reports it: the
 * item's id (resourceData.id) and the change type. A PATCH is "updated"; a move out of the
 * subscribed folder or a delete is "deleted" (outlook-change-notifications-overview).
 */
export interface GraphEcho { id: string; change: "updated" | "deleted" }

/** How long a run's writes are taken for its own when the store pushes them back (the push
 *  fires inside the write) or Graph notifies them (seconds later): outlasts a long run's writes.
 *  A change the user makes meanwhile to an item the run wrote is a change again once the echo
 *  answered (each announced write answers one report); the poll and the fast read check are the net. */
const ECHO_SECONDS = 120;

/** The syncs whose writes are announced: each has its own row, so one run does not replace another's. */
export type EchoKind = "voicemail" | "contacts" | "mail";

const storeEchoKey = (w: StoreEcho) => `${w.uid}|${w.kind}`;
const graphEchoKey = (w: GraphEcho) => `${w.id}|${w.change}`;
/**
 * A list as one Table property, or none when it would not fit (32K characters: about 200 Graph
 * ids): a run with that many writes is a bulk one, and the one run its echo starts is nothing.
 */
const fitting = (keys: string[]) => { const json = JSON.stringify(keys); return json.length <= 32_000 ? json : "[]"; };
const echoRow = (linkId: string, kind: EchoKind) => keyOf(kind === "voicemail" ? linkId : `${linkId}|${kind}`);

export class LeaseRows extends StateRows {
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

  // ---- own-echo suppression -------------------------------------------------------------

  /**
   * A run is about to make these writes on the link's voice mailbox and in Exchange. Both
   * report each of the connector's own writes back (Dovecot's push hook fires inside the
   * STORE/EXPUNGE, before the command answers; Graph notifies a PATCH seconds later), so the
   * row is written before the writes.
   *
   * What the last run announced and was not yet reported stays (while unexpired): Graph's
   * notification of one run's move can arrive after the next run has started (a phone's delete
   * is a STORE and an EXPUNGE, two pushes and two runs a few hundred ms apart). Replacing the
   * row dropped that announcement and the notification started a run of its own. The kept
   * writes live until the new row's expiry: a write that never happened can then answer one
   * report of that item while the link keeps running; the poll and the fast read are the net.
   */
  async expectEchoes(linkId: string, writes: { store: StoreEcho[]; graph: GraphEcho[] }, kind: EchoKind = "voicemail", ttlSeconds = ECHO_SECONDS): Promise<void> {
    const c = await this.tables.client("runs");
    // An APPEND is announced without its UID (the store gives it in its answer, and its push
    // fires before that answer, inside the APPEND): as a count, each answering one MessageAppend
    // in the folder whatever its UID. A write named twice is announced once (one push takes it).
    const exact = writes.store.filter((w) => w.kind !== "append");
    // Two runs of one link and kind never overlap (the lease), but a take may update the row
    // between the read and the write: the etag makes the write read again then.
    await rewriteRow(c, "echo", echoRow(linkId, kind), (row) => {
      const kept = row && (num(row, "until") ?? 0) >= this.now() ? row : undefined;
      const listed = (field: "writes" | "graph") => { try { return kept ? JSON.parse(str(kept, field) ?? "[]") as string[] : []; } catch { return []; } };
      return {
        writes: fitting([...new Set([...listed("writes"), ...exact.map(storeEchoKey)])]),
        appends: (kept ? num(kept, "appends") ?? 0 : 0) + writes.store.length - exact.length,
        graph: fitting([...new Set([...listed("graph"), ...writes.graph.map(graphEchoKey)])]),
        until: this.now() + ttlSeconds * 1000,
      };
    }, { attempts: 3, ids: { mailboxId: linkId } });
  }

  /**
   * True when every one of `events` is a store write the link's last run of `kind` announced:
   * they are its own echo, and are taken (each answers one push only, so a later change the
   * phone makes to the same message is a change again). False otherwise.
   */
  takeStoreEchoes(linkId: string, events: StoreEcho[], kind: EchoKind = "voicemail"): Promise<boolean> {
    const appends = events.filter((e) => e.kind === "append").length;
    return this.takeEchoes(linkId, kind, "writes", events.filter((e) => e.kind !== "append").map(storeEchoKey), appends);
  }

  /** The same for Graph's change notifications: each announced Exchange write answers one notification. */
  takeGraphEchoes(linkId: string, events: GraphEcho[], kind: EchoKind = "voicemail"): Promise<boolean> {
    return this.takeEchoes(linkId, kind, "graph", events.map(graphEchoKey), 0);
  }

  private async takeEchoes(linkId: string, kind: EchoKind, field: "writes" | "graph", keys: string[], appends: number): Promise<boolean> {
    if (!keys.length && !appends) return false;
    const c = await this.tables.client("runs");
    // The pushes of one run's writes come at once (a MULTIAPPEND's, an EXPUNGE's): a take that
    // lost the row to another take reads it again. Merge: the other side's announced writes stay
    // as they are; the etag makes each write answer one notification only.
    try {
      return await rewriteRow(c, "echo", echoRow(linkId, kind), (row) => {
        if (!row || (num(row, "until") ?? 0) < this.now()) return undefined;
        let expected: Set<string>;
        try {
          expected = new Set(JSON.parse(str(row, field) ?? "[]") as string[]);
        } catch {
          return undefined; // unreadable: the notification starts a run, as without the row
        }
        const taken = new Set(keys);
        const appendsLeft = (num(row, "appends") ?? 0) - appends;
        if (![...taken].every((k) => expected.has(k)) || appendsLeft < 0) return undefined;
        return { [field]: JSON.stringify([...expected].filter((k) => !taken.has(k))), ...(appends ? { appends: appendsLeft } : {}) };
      }, { attempts: 3, mode: "Merge", ids: { mailboxId: linkId } });
    } catch (e) {
      // Lost to other takes three times, or the row went: the notification starts a run.
      if (isConnectorError(e, "STATE_CONFLICT") || isConnectorError(e, "NOT_FOUND")) return false;
      throw e;
    }
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
