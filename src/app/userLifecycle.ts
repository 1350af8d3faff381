/**
 * A link's Exchange user over time: deleted in Entra ID, unlicensed or without a mailbox
 * (Graph answers 404 ErrorInvalidUser / MailboxNotEnabledForRESTAPI, mapped to UNKNOWN_USER in
 * src/graph/client.ts), and back again. A link whose user is gone stops running (state
 * "userGone", its own alert) and its Graph subscriptions are deleted, like those of paused and
 * disabled links: only enabled links keep subscriptions (the hook subscription upkeep asks).
 */
import { isConnectorError, type ConnectorError } from "../errors.js";
import type { MailboxLink } from "../state/stateStore.js";
import type { Deps } from "./deps.js";
import { enqueueLinkKinds } from "./schedule.js";

/** Whether a link's subscriptions are to be kept (renewed, recreated); the others are deleted. */
export const linkWantsSubscriptions = (link: Pick<MailboxLink, "state"> | undefined): boolean => link?.state === "enabled";

/** Deletes every Graph subscription of the link and its rows (a paused, disabled, gone or removed link). */
export async function dropLinkSubscriptions(deps: Deps, link: Pick<MailboxLink, "linkId" | "tenantId">): Promise<number> {
  const subs = await deps.state.listSubscriptions({ linkId: link.linkId });
  for (const s of subs) {
    try {
      await deps.graph(link.tenantId).request({ method: "DELETE", url: `/subscriptions/${encodeURIComponent(s.subscriptionId)}` });
    } catch (e) {
      // Gone already (expired, or its user was deleted): nothing left to delete.
      if (!isConnectorError(e, "GRAPH_NOT_FOUND") && !isConnectorError(e, "UNKNOWN_USER")) throw e;
    }
    await deps.state.deleteSubscription(s.subscriptionId);
  }
  return subs.length;
}

/** A run found the user gone: the link waits in "userGone" (alerted) and loses its subscriptions. */
export async function markUserGone(deps: Deps, link: MailboxLink, err: ConnectorError): Promise<void> {
  const since = new Date().toISOString();
  await deps.state.modifyLink(link.linkId, (l) => ({ ...l, state: l.state === "enabled" ? "userGone" : l.state, userGone: l.userGone ?? { code: err.code, message: err.message.slice(0, 500), since } }));
  deps.log.warn("link.user.gone", { linkId: link.linkId, tenantId: link.tenantId, code: err.code });
  await dropLinkSubscriptions(deps, link).catch((e) => deps.log.warn("link.subscriptions.drop.failed", { linkId: link.linkId, error: e }));
}

/**
 * Looks again at links whose user was gone (a licence given back, a mailbox restored): one
 * request each; a mailbox that answers brings the link back (enabled, runs queued).
 */
export async function recheckGoneUsers(deps: Deps): Promise<{ back: string[]; stillGone: number }> {
  const out = { back: [] as string[], stillGone: 0 };
  for (const l of await deps.state.listLinks({ state: "userGone" })) {
    try {
      await deps.graph(l.tenantId).request({ method: "GET", url: `/users/${encodeURIComponent(l.userId)}/mailFolders/inbox?$select=id`, mailbox: l.userId });
    } catch (e) {
      if (isConnectorError(e, "UNKNOWN_USER")) { out.stillGone++; continue; }
      throw e;
    }
    const back = await deps.state.modifyLink(l.linkId, (x) => ({ ...x, state: x.state === "userGone" ? "enabled" : x.state, userGone: undefined }));
    deps.log.info("link.user.back", { linkId: l.linkId });
    await enqueueLinkKinds(deps, back, "admin");
    out.back.push(l.linkId);
  }
  return out;
}
