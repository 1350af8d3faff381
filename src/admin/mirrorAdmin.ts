/**
 * `umconnect mirror verify` and `mirror repair` (docs/mirror.md): verify lists every mirrored
 * folder on both stores and compares them by identity (counts, missing, extra, flag
 * differences, duplicates) without writing anything; repair queues the link's full verify run
 * (kind "mirror", reason "reconcile"), which the sync worker runs under the link's lease like
 * the hourly one.
 */
import { ConnectorError } from "../errors.js";
import type { Deps } from "../app/deps.js";
import { openMirror } from "../app/mirror.js";
import { enqueueSync } from "../app/syncQueue.js";
import { mirrorSource, mirrorTarget } from "../imap/mirrorFolder.js";
import type { MailboxLink } from "../state/stateStore.js";
import { compareMirror, type MirrorComparison } from "../sync/mirrorPlanner.js";

/** A link by its id, or by its voice mailbox on an endpoint that has a backup. */
export async function findMirroredLink(deps: Deps, mailbox: string): Promise<MailboxLink> {
  const byId = await deps.state.getLink(mailbox);
  if (byId) return byId;
  const dir = await deps.directory();
  for (const e of dir.listEndpoints()) {
    if (!dir.backupOf(e.id)) continue;
    const l = await deps.state.findLinkByVoice(e.id, mailbox);
    if (l) return l;
  }
  throw new ConnectorError("NOT_FOUND", `no link ${mailbox}, and no voice mailbox ${mailbox} on an endpoint with a backup`);
}

export interface MirrorVerifyResult { linkId: string; voiceMailbox: string; backupEndpoint: string; inStep: boolean; folders: Record<string, MirrorComparison> }

export async function verifyMirror(deps: Deps, link: MailboxLink): Promise<MirrorVerifyResult> {
  const s = await openMirror(deps, link);
  if (!s) throw new ConnectorError("CONFIG_INVALID", `link ${link.linkId}'s profile does not mirror (profile mirror.enabled)`, { mailboxId: link.linkId });
  const folders: Record<string, MirrorComparison> = {};
  try {
    for (const folder of s.folders) {
      const source = await mirrorSource(s.production.client, link.endpointId, folder).changes(undefined, true);
      const target = mirrorTarget(s.backup.client, s.backupId, folder);
      // A folder the backup lacks reads as empty: verify creates nothing.
      const exists = (await s.backup.client.list()).some((b) => b.path === folder);
      folders[folder] = compareMirror(source.messages, exists ? await target.list() : []);
    }
  } finally {
    await s.close();
  }
  const inStep = Object.values(folders).every((c) => !c.missing.length && !c.extra.length && !c.flagDifferences.length && !c.duplicates.length);
  return { linkId: link.linkId, voiceMailbox: link.voiceMailbox, backupEndpoint: s.backupId, inStep, folders };
}

export function formatVerify(r: MirrorVerifyResult): string {
  const lines = [`${r.linkId} (voice mailbox ${r.voiceMailbox}) -> backup ${r.backupEndpoint}: ${r.inStep ? "in step" : "DIFFERENT"}`];
  for (const [f, c] of Object.entries(r.folders)) {
    lines.push(`  ${f}: production ${c.production}, backup ${c.backup}, missing ${c.missing.length}, extra ${c.extra.length}, flag differences ${c.flagDifferences.length}, duplicates ${c.duplicates.length}`);
    for (const id of c.missing.slice(0, 20)) lines.push(`    missing  ${id}`);
    for (const id of c.extra.slice(0, 20)) lines.push(`    extra    ${id}`);
    for (const d of c.flagDifferences.slice(0, 20)) lines.push(`    flags    ${d.identity}: production ${d.production.join(" ") || "(none)"}, backup ${d.backup.join(" ") || "(none)"}`);
  }
  return lines.join("\n");
}

export async function repairMirror(deps: Deps, link: MailboxLink): Promise<{ linkId: string; queued: true }> {
  await enqueueSync(deps.syncQueue, { linkId: link.linkId, kind: "mirror", reason: "reconcile", at: Date.now() });
  return { linkId: link.linkId, queued: true };
}
