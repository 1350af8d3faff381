/**
 * The state store: everything the connector remembers lives in Azure Table Storage (all table
 * names prefixed, e.g. "umc"). This file is the facade every caller uses; the rows live by
 * concern, each file listing its tables and keys:
 *   links.ts          tenants, mailbox links and their uniqueness index, group bindings
 *   items.ts          per-link item state and cursors (voicemail, contacts, calendar), conflicts
 *   subscriptions.ts  Graph subscriptions and the lifetime each tenant accepts
 *   leases.ts         mailbox leases, coalesced run requests and queued marks, consent nonces
 *   configRows.ts     endpoints and profiles, alerts
 *   storeAccessState.ts  voice-store access (lockout gate, connection budget)
 */
import { ConfigRows } from "./configRows.js";
import { ItemRows } from "./items.js";
import { LeaseRows } from "./leases.js";
import { LinkRows } from "./links.js";
import { MirrorRows } from "./mirror.js";
import { StateRows } from "./rows.js";
import { SubscriptionRows } from "./subscriptions.js";
import { Tables, type StorageTarget } from "./tables.js";

export type { GroupBinding, KindStatus, LinkState, MailboxLink, SubscriptionHealth, Tenant } from "./links.js";
export type { ConflictRecord, RecordStatePort } from "./items.js";
export type { SubscriptionRecord } from "./subscriptions.js";
export type { EchoKind, GraphEcho, Lease, StoreEcho } from "./leases.js";
export type { AlertRecord } from "./configRows.js";

// The facade has every method of the row groups (TypeScript's mixin pattern: the interface
// merges their members into the class, the constructor binds them to one shared set of clients).
export interface StateStore extends LinkRows, ItemRows, SubscriptionRows, LeaseRows, ConfigRows, MirrorRows {}

export class StateStore extends StateRows {
  constructor(target: StorageTarget, now: () => number = Date.now) {
    super(new Tables(target), now);
    for (const Part of [LinkRows, ItemRows, SubscriptionRows, LeaseRows, ConfigRows, MirrorRows]) {
      const part = new Part(this.tables, now);
      for (const name of Object.getOwnPropertyNames(Part.prototype)) {
        if (name === "constructor") continue;
        if (name in this) throw new Error(`state store: ${name} is defined by two row groups`);
        const fn = (part as unknown as Record<string, unknown>)[name];
        if (typeof fn === "function") Object.defineProperty(this, name, { value: fn.bind(part), enumerable: false });
      }
    }
  }

  /** The table clients, for stores of their own rows (src/state/storeAccessState.ts). */
  get tableClients(): Tables { return this.tables; }
}
