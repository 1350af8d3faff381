/**
 * `umconnect resync <linkId> --adopt --dry-run`: what the first sync (or an adopting resync)
 * would do, without doing it: voice messages adopted (and how they matched), copied, removed,
 * and ambiguous matches that would be copied and listed, not merged; contacts that would be
 * merged (one person on both sides) or copied; items in the store's calendar folder that
 * umconnect did not write, kept or removed as the profile says. Both sides are only read (the
 * contacts and calendar folders are created when missing, as the first sync would).
 */
import { ConnectorError } from "../errors.js";
import type { Deps } from "../app/deps.js";
import { adoptionPorts, openVoicemailPorts } from "../app/voicemail.js";
import { guardLimits } from "../app/guardLimits.js";
import { syncVoicemail } from "../sync/voicemailSync.js";
import { syncContacts } from "../sync/contactsSync.js";
import { openContactsPorts } from "../app/contacts.js";
import { openLinkedMailbox } from "../app/storeAccess.js";
import type { FeatureProfile } from "./profiles.js";
import type { MailboxLink } from "../state/stateStore.js";

export interface AdoptionPreview {
  linkId: string;
  adopt: Array<{ imapUid: number; graphId: string; readMerged: boolean; how?: string }>;
  copy: Array<{ imapUid: number }>;
  remove: Array<{ side: "exchange" | "store"; id: string | number }>;
  ambiguous: Array<{ imapUid: number; candidates: string[]; reason: string }>;
  /** Other products' items found in the folder (adopted or not, never deleted). */
  foreignInExchange: number;
  /** Contacts (when the profile syncs them): one person on both sides merged, the rest copied. */
  contacts?: ContactsPreview;
  /** The store's calendar folder (when the profile mirrors the calendar): items umconnect did not write. */
  calendar?: { foreignItems: "keep" | "remove"; foreign: Array<{ imapUid: number; action: "keep" | "remove" }> };
}

export interface ContactsPreview {
  /** A store card and an Exchange contact of one person: linked, content merged (latest wins, the loser kept). */
  merge: Array<{ imapUid: number; graphId: string; result: "same" | "store wins" | "Exchange wins" }>;
  copy: Array<{ to: "exchange"; imapUid: number } | { to: "store"; graphId: string }>;
  /** A card that fits several contacts (or the reverse): copied, listed in umconnect conflicts. */
  ambiguous: Array<{ storeKey: string; candidates: string[] }>;
  /** Other actions on contacts already linked (updates, deletes), by kind. */
  other: Record<string, number>;
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
    const profile = ports.profile;
    if (profile.contacts.enabled) out.contacts = await previewContacts(deps, link, profile);
    if (profile.calendar.enabled) out.calendar = await previewCalendar(deps, link, profile);
    return out;
  } finally {
    await ports.voice.close();
  }
}

/** The contacts sync's full run, planned only. */
async function previewContacts(deps: Deps, link: MailboxLink, profile: FeatureProfile): Promise<ContactsPreview> {
  const ports = await openContactsPorts(deps, link, profile);
  try {
    const report = await syncContacts({ ...ports, log: deps.log, ids: { tenantId: link.tenantId, mailboxId: link.linkId }, mode: "full", dryRun: true, limits: guardLimits(deps, profile, link, "contacts") });
    const paired = new Set(report.adoption?.pairs.map((p) => p.storeKey));
    const ambiguous = new Set(report.adoption?.ambiguous.map((a) => a.storeKey));
    const out: ContactsPreview = { merge: [], copy: [], ambiguous: report.adoption?.ambiguous ?? [], other: {} };
    for (const a of report.planned ?? []) {
      if (paired.has(a.syncKey) && (a.kind === "record" || a.kind === "updateGraph" || a.kind === "updateImap")) {
        out.merge.push({ imapUid: a.imapUid, graphId: a.graphId, result: a.kind === "record" ? "same" : a.kind === "updateGraph" ? "store wins" : "Exchange wins" });
      } else if (a.kind === "createInGraph") { if (!ambiguous.has(a.syncKey)) out.copy.push({ to: "exchange", imapUid: a.imapUid }); }
      else if (a.kind === "createInImap") out.copy.push({ to: "store", graphId: a.graphId });
      else out.other[a.kind] = (out.other[a.kind] ?? 0) + 1;
    }
    return out;
  } finally {
    await ports.store.close();
  }
}

/** Items in the store's calendar folder without umconnect's key header: another product's. */
async function previewCalendar(deps: Deps, link: MailboxLink, profile: FeatureProfile): Promise<NonNullable<AdoptionPreview["calendar"]>> {
  const store = await openLinkedMailbox(deps, link, { folder: profile.calendar.folder, removal: { mode: "expunge" }, createFolder: true });
  try {
    const action = profile.calendar.foreignItems;
    const foreign = [...(await store.listKeys())].filter(([, key]) => !key).map(([imapUid]) => ({ imapUid, action }));
    return { foreignItems: action, foreign };
  } finally {
    await store.close();
  }
}

/** The preview as a table for people. */
export function adoptionTable(p: AdoptionPreview): string {
  const rows: string[][] = [["action", "voice store", "Exchange", "note"]];
  for (const a of p.adopt) rows.push(["adopt", `UID ${a.imapUid}`, a.graphId, `${a.how}${a.readMerged ? "; read state merged (read wins)" : ""}`]);
  for (const c of p.copy) rows.push(["copy", `UID ${c.imapUid}`, "(new)", ""]);
  for (const a of p.ambiguous) rows.push(["copy (ambiguous)", `UID ${a.imapUid}`, a.candidates.join(" "), `${a.reason}; listed in umconnect conflicts, nothing merged`]);
  for (const r of p.remove) rows.push(["remove", r.side === "store" ? `UID ${r.id}` : "", r.side === "exchange" ? String(r.id) : "", ""]);
  for (const m of p.contacts?.merge ?? []) rows.push(["merge contact", `UID ${m.imapUid}`, m.graphId, m.result === "same" ? "same person, same content" : `same person; ${m.result} (the other version kept in umconnect conflicts)`]);
  for (const c of p.contacts?.copy ?? []) rows.push(c.to === "exchange" ? ["copy contact", `UID ${c.imapUid}`, "(new)", ""] : ["copy contact", "(new)", c.graphId, ""]);
  for (const a of p.contacts?.ambiguous ?? []) rows.push(["copy contact (ambiguous)", a.storeKey, a.candidates.join(" "), "fits several: copied, listed in umconnect conflicts, nothing merged"]);
  for (const f of p.calendar?.foreign ?? []) rows.push([f.action === "remove" ? "remove calendar item" : "keep calendar item", `UID ${f.imapUid}`, "", "not written by umconnect (profile calendar.foreignItems)"]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(rows[0]!), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line),
    "", `${p.adopt.length} to adopt, ${p.copy.length + p.ambiguous.length} to copy (${p.ambiguous.length} ambiguous), ${p.remove.length} to remove; ${p.foreignInExchange} other products' item(s) in Exchange`,
    ...(p.contacts ? [`contacts: ${p.contacts.merge.length} to merge, ${p.contacts.copy.length + p.contacts.ambiguous.length} to copy (${p.contacts.ambiguous.length} ambiguous)${Object.keys(p.contacts.other).length ? `, ${Object.entries(p.contacts.other).map(([k, n]) => `${n} ${k}`).join(", ")}` : ""}`] : []),
    ...(p.calendar ? [`calendar: ${p.calendar.foreign.length} item(s) umconnect did not write, to ${p.calendar.foreignItems === "remove" ? "remove" : "keep"}`] : [])].join("\n");
}
