/**
 * A voice store's connection budget, held across all instances: stores limit connections per
 * user and per client address, and every instance of this app reaches a store from the same
 * address (the NAT gateway's static IP in Azure, docs/deploy.md). The per-process cap
 * (maxConnections, src/imap/endpoint.ts) cannot see other instances, so each connection
 * first takes two leased slots in Table Storage: one of the mailbox's `perUser` slots and one
 * of the endpoint's `perAddress` slots. Sync runs of every kind, the fast read check (which
 * enqueues runs) and operator tests all open connections through src/app/storeAccess.ts and so
 * draw from the same budget. A slot is a lease (renewed while the connection lives), so an
 * instance that dies frees its slots when their lease runs out.
 *
 * Defaults per vendor, from their documented limits:
 *  - Dovecot: mail_max_userip_connections = 10 per user and client address
 *    (doc.dovecot.org, "mail_max_userip_connections", default 10); no total per address.
 *  - Microsoft Exchange IMAP4 ("Set IMAP4 connection limits", learn.microsoft.com
 *    previous-versions/office/exchange-server-2010/bb123712; Set-ImapSettings):
 *    MaxConnectionsPerUser default 16, MaxConnectionFromSingleIP default 2,000.
 *  - Cisco Unity Connection, Avaya Aura Messaging, Mitel: no per-user IMAP limit is published;
 *    the generic default (4 per user, 16 per address) stays below every published figure
 *    above and below the 4 connections Cisco's own mailbox sync uses per server by default
 *    (shared/reference/anchors.md [C4]). Set the store's real limits per endpoint.
 */
import crypto from "node:crypto";
import { ConnectorError, isConnectorError } from "../errors.js";
import type { BudgetSlot } from "../state/storeAccessState.js";
import { storeAccessState } from "./credentials.js";
import type { Deps } from "./deps.js";

export type StoreVendor = "generic" | "dovecot" | "exchange" | "cisco-unity" | "avaya" | "mitel";

export interface ConnectionBudget {
  perUser: number;
  perAddress: number;
}

export const VENDOR_BUDGETS: Record<StoreVendor, ConnectionBudget> = {
  generic: { perUser: 4, perAddress: 16 },
  dovecot: { perUser: 10, perAddress: 200 },
  exchange: { perUser: 16, perAddress: 2000 },
  "cisco-unity": { perUser: 4, perAddress: 16 },
  avaya: { perUser: 4, perAddress: 16 },
  mitel: { perUser: 4, perAddress: 16 },
};

/** Slot leases: short, so a dead instance's slots come back soon; renewed at a third of it. */
const SLOT_SECONDS = 60;
/**
 * A watch's slots: a watch lives for its watcher's hold (at most 10 minutes), and renewing
 * 1,000 watches' two slots every 20 s would be 100 Table writes a second. A dead instance's
 * watch slots come back within this; they are only the watches' share, so sync runs keep theirs.
 */
const WATCH_SLOT_SECONDS = 600;
/** How long a caller waits for a slot before the run is put off (IMAP_CONNECTION_LIMIT). */
export const BUDGET_WAIT_MS = 10_000;
/**
 * A store counts a session until its server process has ended, a little after LOGOUT's
 * answer: the slot is handed back this much later, so the next login is not refused.
 */
const RELEASE_DELAY_MS = 250;

export const addressScope = (endpointId: string) => `${endpointId}|address`;
export const userScope = (endpointId: string, mailbox: string) => `${endpointId}|user|${mailbox.toLowerCase()}`;

/**
 * One try at a slot of the mailbox and one of the endpoint; returns the release, or undefined
 * when the budget is in use (nothing is held then). Callers wait between tries outside the
 * credential's login slot (src/app/storeAccess.ts), so a full budget does not hold up the
 * logins of other mailboxes.
 */
export async function tryTakeConnection(deps: Deps, endpointId: string, mailbox: string, budget: ConnectionBudget, purpose: "sync" | "watch" = "sync"): Promise<(() => void) | undefined> {
  const access = storeAccessState(deps);
  const owner = `${deps.workerId}:${crypto.randomUUID()}`;
  // Watches hold their connections for minutes: they may only take the low slots, so the
  // top ones (watchLimits) always stay for sync runs, or a store watched in full would have
  // no connection left to sync with.
  const limits = purpose === "watch" ? watchLimits(budget) : budget;
  const ttl = purpose === "watch" ? WATCH_SLOT_SECONDS : SLOT_SECONDS;
  const user = await access.takeSlot(userScope(endpointId, mailbox), limits.perUser, owner, ttl);
  if (!user) return undefined;
  let address: BudgetSlot | undefined;
  try {
    address = await access.takeSlot(addressScope(endpointId), limits.perAddress, owner, ttl);
  } finally {
    if (!address) await access.releaseSlot(user).catch(() => undefined);
  }
  if (!address) return undefined;
  const held = [user, address];
  const renew = setInterval(() => {
    held.forEach((s, i) => {
      access.renewSlot(s, ttl).then((n) => { held[i] = n; }, (e: unknown) => {
        // Lost (expired and taken over): the store may briefly see one more than budgeted.
        if (isConnectorError(e, "STATE_CONFLICT")) deps.log.warn("budget.slot.lost", { endpoint: endpointId, scope: s.scope });
      });
    });
  }, (ttl * 1000) / 3);
  renew.unref();
  let released = false;
  return () => {
    if (released) return;
    released = true;
    clearInterval(renew);
    const t = setTimeout(() => { for (const s of held) access.releaseSlot(s).catch(() => undefined); }, RELEASE_DELAY_MS);
    t.unref?.();
  };
}

/** The error for a budget that stayed in use: transient, the run is put off and retried with backoff. */
export function budgetInUse(endpointId: string, mailbox: string, budget: ConnectionBudget, purpose: "sync" | "watch"): ConnectorError {
  const limits = purpose === "watch" ? watchLimits(budget) : budget;
  return new ConnectorError("IMAP_CONNECTION_LIMIT", `the connection budget of ${endpointId} is in use (${limits.perAddress} per address, ${limits.perUser} per user for ${mailbox}${purpose === "watch" ? ", the IDLE watches' share" : ""}); ${purpose === "watch" ? "the mailbox is polled instead" : "the run is put off"}`, { endpoint: endpointId, transient: true });
}

/** Jittered wait before the next try at a budget slot (50 ms doubling to 1 s). */
export const budgetRetryDelay = (attempt: number) => Math.min(1000, 50 * 2 ** Math.min(attempt, 4)) * (0.5 + Math.random());

/**
 * The part of a budget IDLE watches may hold: all but a quarter per address (at least 2 left
 * for sync runs) and all but one per user (a watched mailbox can still be synced).
 */
export function watchLimits(budget: ConnectionBudget): ConnectionBudget {
  return { perUser: Math.max(0, budget.perUser - 1), perAddress: Math.max(0, budget.perAddress - Math.max(2, Math.ceil(budget.perAddress / 4))) };
}

/** Use against budget per endpoint, for the status page. */
export async function budgetUse(deps: Deps, budgets: Map<string, ConnectionBudget>): Promise<Array<{ endpointId: string; budget: ConnectionBudget; address: number; busiestUser?: { mailbox: string; connections: number } }>> {
  const inUse = await storeAccessState(deps).slotsInUse("");
  return [...budgets].map(([endpointId, budget]) => {
    let busiest: { mailbox: string; connections: number } | undefined;
    for (const [scope, n] of inUse) {
      const prefix = `${endpointId}|user|`;
      if (scope.startsWith(prefix) && (!busiest || n > busiest.connections)) busiest = { mailbox: scope.slice(prefix.length), connections: n };
    }
    return { endpointId, budget, address: inUse.get(addressScope(endpointId)) ?? 0, ...(busiest ? { busiestUser: busiest } : {}) };
  });
}
