/**
 * Users leaving, as Entra ID and Exchange Online then answer Graph (issue 17):
 * - deleted in Entra ID: the user and its mailbox are gone; mailbox requests answer
 *   404 ErrorInvalidUser ("The requested user '...' is invalid."), as server.ts does for any
 *   unknown user;
 * - mailbox removed or licence taken away (after the grace period the mailbox is disconnected):
 *   404 MailboxNotEnabledForRESTAPI, "The mailbox is either inactive, soft-deleted, or is
 *   hosted on-premise." (https://learn.microsoft.com/en-us/graph/errors; the code Exchange
 *   Online answers for users without an Exchange Online mailbox);
 * - sign-in blocked (accountEnabled false): the mailbox stays reachable for an application
 *   (app-only access does not sign the user in), so nothing changes for the sync.
 */
import type { SimUser } from "./model.js";
import { graphError, type GraphSimulator } from "./server.js";

const mailboxless = new WeakSet<SimUser>();

export function deleteUser(sim: GraphSimulator, ref: string): void {
  const u = sim.userByRef(ref);
  sim.tenants.get(u.tenantId)!.users.delete(u.id);
}

/** The mailbox is disconnected (removed, or the licence is gone); `false` gives it back. */
export function setMailboxEnabled(sim: GraphSimulator, ref: string, enabled: boolean): void {
  const u = sim.userByRef(ref);
  if (enabled) mailboxless.delete(u); else mailboxless.add(u);
}

/** Hook for server.ts: the answer for mailbox resources of a user without a mailbox. */
export function mailboxAnswer(user: SimUser, path: string): ReturnType<typeof graphError> | undefined {
  if (!mailboxless.has(user)) return undefined;
  if (!/^\/users\/[^/]+\/(messages|mailFolders|contacts|contactFolders|events|calendarView|calendar)(\/|$)/i.test(path)) return undefined;
  return graphError(404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.");
}
