/**
 * `umconnect resync <linkId> --adopt --dry-run`: what the first sync (or an adopting resync)
 * would do, without doing it: voice messages adopted (and how they matched), copied, removed,
 * and ambiguous matches that would be copied and listed, not merged. Both sides are only read.
 */
import { ConnectorError } from "../errors.js";
import type { Deps } from "../app/deps.js";
import { adoptionPorts, openVoicemailPorts } from "../app/voicemail.js";
import { guardLimits } from "../app/guardLimits.js";
import { syncVoicemail } from "../sync/voicemailSync.js";

export interface AdoptionPreview {
  linkId: string;
  adopt: Array<{ imapUid: number; graphId: string; readMerged: boolean; how?: string }>;
  copy: Array<{ imapUid: number }>;
  remove: Array<{ side: "exchange" | "store"; id: string | number }>;
  ambiguous: Array<{ imapUid: number; candidates: string[]; reason: string }>;
  /** Other products' items found in the folder (adopted or not, never deleted). */
  foreignInExchange: number;
}

export async function previewAdoption(deps: Deps, linkId: string): Promise<AdoptionPreview> {
  const link = await deps.state.getLink(linkId);
  if (!link) throw new ConnectorError("NOT_FOUND", `no link ${linkId}`, { mailboxId: linkId });
  const ports = await openVoicemailPorts(deps, link);
  try {
    const report = await syncVoicemail({
      ...ports, log: deps.log, ids: { tenantId: link.tenantId, mailboxId: link.linkId }, mode: "full", dryRun: true,
      limits: { ...guardLimits(deps, ports.profile, link, "voicemail"), agingMinDays: ports.profile.massDelete.agingMinDays },
      adoption: { ...adoptionPorts(deps, link), requested: true },
    });
    const ambiguousKeys = new Set(report.adoption?.ambiguous.map((a) => a.syncKey));
    const out: AdoptionPreview = { linkId, adopt: [], copy: [], remove: [], ambiguous: (report.adoption?.ambiguous ?? []).map((a) => ({ imapUid: a.uid, candidates: a.candidates, reason: a.reason })), foreignInExchange: report.adoption?.foreign ?? 0 };
    for (const a of report.planned ?? []) {
      if (a.kind === "adopt") out.adopt.push({ imapUid: a.imapUid, graphId: a.graphId, readMerged: Boolean(a.setGraphRead || a.setImapSeen), how: a.writeKey ? "another product's voicemail" : "our own copy (same key)" });
      else if (a.kind === "createInGraph" && !ambiguousKeys.has(a.syncKey)) out.copy.push({ imapUid: a.imapUid });
      else if (a.kind === "deleteInGraph") out.remove.push({ side: "exchange", id: a.graphId });
      else if (a.kind === "deleteInImap") out.remove.push({ side: "store", id: a.imapUid });
    }
    return out;
  } finally {
    await ports.voice.close();
  }
}

/** The preview as a table for people. */
export function adoptionTable(p: AdoptionPreview): string {
  const rows: string[][] = [["action", "voice store", "Exchange", "note"]];
  for (const a of p.adopt) rows.push(["adopt", `UID ${a.imapUid}`, a.graphId, `${a.how}${a.readMerged ? "; read state merged (read wins)" : ""}`]);
  for (const c of p.copy) rows.push(["copy", `UID ${c.imapUid}`, "(new)", ""]);
  for (const a of p.ambiguous) rows.push(["copy (ambiguous)", `UID ${a.imapUid}`, a.candidates.join(" "), `${a.reason}; listed in umconnect conflicts, nothing merged`]);
  for (const r of p.remove) rows.push(["remove", r.side === "store" ? `UID ${r.id}` : "", r.side === "exchange" ? String(r.id) : "", ""]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(rows[0]!), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line),
    "", `${p.adopt.length} to adopt, ${p.copy.length + p.ambiguous.length} to copy (${p.ambiguous.length} ambiguous), ${p.remove.length} to remove; ${p.foreignInExchange} other products' item(s) in Exchange`].join("\n");
}
