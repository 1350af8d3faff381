/**
 * A user's life with umconnect after the first import: unlink (leave; Exchange copies kept or
 * removed, as asked), relink (a new extension or a new Exchange user: the old link's state
 * goes, the new one adopts what is already there so nothing is copied twice), and the current
 * UPN for exports (users get renamed).
 */
import crypto from "node:crypto";
import { ConnectorError, isConnectorError } from "../errors.js";
import type { Deps } from "../app/deps.js";
import { enqueueLinkKinds } from "../app/schedule.js";
import { dropLinkSubscriptions } from "../app/userLifecycle.js";
import { ExchangeVoicemail } from "../graph/voicemail.js";
import type { Lease, MailboxLink } from "../state/stateStore.js";
import { findUserBySmtp } from "./links.js";

const KINDS = ["voicemail", "contacts", "calendar", "location"] as const;

/**
 * Runs `fn` once no run of the link is in flight: the link is disabled first (new runs skip
 * it), then every kind's lease is taken, which waits for a run still going to finish. Without
 * this, a run that read the state before an unlink could see the copies leaving Outlook and
 * delete the store messages.
 */
async function whileQuiet<T>(deps: Deps, linkId: string, fn: () => Promise<T>): Promise<T> {
  await deps.state.modifyLink(linkId, (l) => ({ ...l, state: "disabled" }));
  const owner = `admin:${crypto.randomUUID()}`;
  const held: Lease[] = [];
  const deadline = Date.now() + (deps.config.sync.leaseSeconds + 30) * 1000;
  try {
    for (const kind of KINDS) {
      for (;;) {
        try { held.push(await deps.state.acquireLease(`${kind}:${linkId}`, owner, deps.config.sync.leaseSeconds)); break; } catch (e) {
          if (!isConnectorError(e, "LEASE_HELD") || Date.now() > deadline) throw e;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    }
    return await fn();
  } finally {
    for (const l of held) await deps.state.releaseLease(l).catch(() => undefined);
  }
}

export interface UnlinkResult { linkId: string; exchangeCopies: "kept" | "removed"; removed: number; subscriptions: number }

/**
 * Ends a link. "keep": the copies stay in Outlook as the user's history (they carry our key,
 * and a later link's first sync leaves copies without a store original alone); "remove": every
 * copy umconnect made is moved to Deleted Items. The voice store is never touched.
 */
export async function unlink(deps: Deps, linkId: string, exchangeCopies: "keep" | "remove"): Promise<UnlinkResult> {
  const link = await deps.state.getLink(linkId);
  if (!link) throw new ConnectorError("NOT_FOUND", `no link ${linkId}`, { mailboxId: linkId });
  return whileQuiet(deps, linkId, () => unlinkQuiet(deps, link, exchangeCopies));
}

async function unlinkQuiet(deps: Deps, link: MailboxLink, exchangeCopies: "keep" | "remove"): Promise<UnlinkResult> {
  const linkId = link.linkId;
  const subscriptions = await dropLinkSubscriptions(deps, link);
  let removed = 0;
  if (exchangeCopies === "remove") {
    const exchange = new ExchangeVoicemail(deps.graph(link.tenantId), link.userId);
    for (const r of await deps.state.voicemailState(linkId).loadItems()) {
      if (!r.graphId || r.detached === "imap") continue;
      try { await exchange.moveToDeletedItems(r.graphId); removed++; } catch (e) { if (!isConnectorError(e, "GRAPH_NOT_FOUND") && !isConnectorError(e, "UNKNOWN_USER")) throw e; }
    }
  }
  await deps.state.deleteLink(linkId);
  deps.log.warn("admin.link.unlinked", { linkId, exchangeCopies, removed });
  return { linkId, exchangeCopies: exchangeCopies === "keep" ? "kept" : "removed", removed, subscriptions };
}

/**
 * Moves a link to a new extension (voice mailbox, optionally on another endpoint) or a new
 * Exchange user (by SMTP address), keeping its id and profile. The old sync state is dropped;
 * the first run of the new pair adopts: copies already in Exchange are matched by key (same
 * messages moved to the new extension) or as another product's voicemails, never copied twice.
 */
export async function relink(deps: Deps, linkId: string, change: { voiceMailbox?: string; endpointId?: string; smtp?: string }): Promise<MailboxLink> {
  const old = await deps.state.getLink(linkId);
  if (!old) throw new ConnectorError("NOT_FOUND", `no link ${linkId}`, { mailboxId: linkId });
  if (!change.voiceMailbox && !change.endpointId && !change.smtp) throw new ConnectorError("BAD_REQUEST", "relink needs --voice-mailbox, --endpoint or --smtp");
  const problems: string[] = [];
  let user = { id: old.userId, userPrincipalName: old.upn ?? old.userId };
  if (change.smtp) {
    const found = await findUserBySmtp(deps, old.tenantId, change.smtp.toLowerCase());
    if (!found) problems.push(`no Exchange user has the address ${change.smtp}`);
    else {
      user = found;
      const holder = await deps.state.findLinkByUser(old.tenantId, found.id);
      if (holder && holder.linkId !== linkId) problems.push(`${change.smtp} is already linked (link ${holder.linkId})`);
    }
  }
  const endpointId = change.endpointId ?? old.endpointId;
  const voiceMailbox = change.voiceMailbox ?? old.voiceMailbox;
  try { (await deps.directory()).endpoint(endpointId); } catch { problems.push(`unknown voice-store endpoint ${endpointId}`); }
  const holder = await deps.state.findLinkByVoice(endpointId, voiceMailbox);
  if (holder && holder.linkId !== linkId) problems.push(`voice mailbox ${voiceMailbox} is already linked (link ${holder.linkId})`);
  if (problems.length) throw new ConnectorError("BAD_REQUEST", `relink of ${linkId} refused, nothing changed`, { problems, mailboxId: linkId });
  await whileQuiet(deps, linkId, async () => {
    await dropLinkSubscriptions(deps, old);
    await deps.state.deleteLink(linkId);
  });
  const created = await deps.state.createLink({
    linkId, tenantId: old.tenantId, endpointId, voiceMailbox, userId: user.id, upn: user.userPrincipalName, profileId: old.profileId,
    profileOverride: old.profileOverride, state: "enabled", adoptRequested: new Date().toISOString(),
  });
  deps.log.warn("admin.link.relinked", { linkId, newVoice: change.voiceMailbox !== undefined || change.endpointId !== undefined, newUser: change.smtp !== undefined });
  await enqueueLinkKinds(deps, created, "admin");
  return created;
}

/** The current UPNs of these links' users (renames happen), by id; a gone user keeps the stored one. */
export async function currentUpns(deps: Deps, links: MailboxLink[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const queue = [...links];
  const worker = async () => {
    for (let l = queue.shift(); l; l = queue.shift()) {
      try {
        const u = await deps.graph(l.tenantId).request<{ userPrincipalName: string }>({ method: "GET", url: `/users/${encodeURIComponent(l.userId)}?$select=userPrincipalName` });
        out.set(l.linkId, u.userPrincipalName);
        if (u.userPrincipalName !== l.upn) await deps.state.modifyLink(l.linkId, (x) => ({ ...x, upn: u.userPrincipalName }));
      } catch (e) {
        if (!isConnectorError(e, "UNKNOWN_USER") && !isConnectorError(e, "GRAPH_NOT_FOUND")) throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, queue.length) }, worker));
  return out;
}
