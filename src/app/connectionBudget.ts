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
/** How long a caller waits for a slot before the run is put off (IMAP_CONNECTION_LIMIT). */
const WAIT_MS = 10_000;
/**
 * A store counts a session until its server process has ended, a little after LOGOUT's
 * answer: the slot is handed back this much later, so the next login is not refused.
 */
const RELEASE_DELAY_MS = 250;

export const addressScope = (endpointId: string) => `${endpointId}|address`;
export const userScope = (endpointId: string, mailbox: string) => `${endpointId}|user|${mailbox.toLowerCase()}`;

/**
 * Takes a slot of the mailbox and one of the endpoint, waiting up to WAIT_MS (jittered
 * retries); returns the release. Throws IMAP_CONNECTION_LIMIT (transient: the run is put off
 * and retried with backoff) when the budget stays exhausted.
 */
export async function takeConnection(deps: Deps, endpointId: string, mailbox: string, budget: ConnectionBudget, waitMs = WAIT_MS): Promise<() => void> {
  const access = storeAccessState(deps);
  const owner = `${deps.workerId}:${crypto.randomUUID()}`;
  const deadline = Date.now() + waitMs;
  let user: BudgetSlot | undefined;
  let address: BudgetSlot | undefined;
  try {
    for (let attempt = 0; ; attempt++) {
      user ??= await access.takeSlot(userScope(endpointId, mailbox), budget.perUser, owner, SLOT_SECONDS);
      if (user) address ??= await access.takeSlot(addressScope(endpointId), budget.perAddress, owner, SLOT_SECONDS);
      if (user && address) break;
      if (Date.now() >= deadline) {
        throw new ConnectorError("IMAP_CONNECTION_LIMIT", `the connection budget of ${endpointId} is in use (${user ? `${budget.perAddress} per address` : `${budget.perUser} per user for ${mailbox}`}); the run is put off`, { endpoint: endpointId, transient: true });
      }
      await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** Math.min(attempt, 4)) * (0.5 + Math.random())));
    }
  } catch (e) {
    await Promise.all([user && access.releaseSlot(user), address && access.releaseSlot(address)].filter(Boolean)).catch(() => undefined);
    throw e;
  }
  const held = [user, address];
  const renew = setInterval(() => {
    held.forEach((s, i) => {
      access.renewSlot(s, SLOT_SECONDS).then((n) => { held[i] = n; }, (e: unknown) => {
        // Lost (expired and taken over): the store may briefly see one more than budgeted.
        if (isConnectorError(e, "STATE_CONFLICT")) deps.log.warn("budget.slot.lost", { endpoint: endpointId, scope: s.scope });
      });
    });
  }, (SLOT_SECONDS * 1000) / 3);
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
