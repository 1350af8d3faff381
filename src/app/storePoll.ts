/**
 * The poll's store check (DESIGN.md section 2: "pollStores (CONDSTORE STATUS)"; issue #19).
 *
 * The minute poll is the safety net for stores whose push is missing, late or lost. Asking every
 * link for a run each minute made its cost grow with the number of links: a run that finds
 * nothing still takes the lease, reads the state, logs in, SELECTs and asks Graph for a delta
 * (about 17 Table transactions; docs/cost.md), and at 1,000 links on two CPUs those runs
 * outgrew what the workers could do (docs/load.md). Now the shard that polls a link logs in once
 * and asks STATUS of each folder a polled kind watches (RFC 3501 section 6.3.10; HIGHESTMODSEQ
 * from CONDSTORE, RFC 7162 section 3.1.4.1, which moves with every append, flag change and
 * expunge). A kind gets a run only when its folder moved since its last run saved its cursor,
 * so the poll's runs follow the store's changes, not the number of links.
 *
 * A kind is run without asking when the check cannot answer for it: no cursor yet (first run),
 * a cursor without HIGHESTMODSEQ, a server without CONDSTORE (remembered per endpoint, so such a
 * store costs no extra login), a kind whose last run failed (the run retries and reports), the
 * DR mirror (its folders and cursors are its own: src/app/mirror.ts), or a check that failed
 * (the run reports the store's error on the link).
 *
 * Exchange's side of a quiet store: Graph's notifications, the fast read check (links with
 * unread voicemail changed within UMC_FAST_READ_WINDOW_SECONDS, or without a working
 * subscription) and the hourly reconcile cover it. For the phone's lamp, a link with unread
 * voicemail whose store is quiet still gets the fast read's check from the poll (src/app/schedule.ts):
 * one Graph delta under the lease, no store login, nothing written when Outlook has nothing new;
 * so a read in Outlook whose notification was lost reaches the store within the endpoint's
 * pollMinutes (the minute, before the interval existed).
 * E-mail on the phone from Exchange folders other than the Inbox (no notification) is run, not checked.
 *
 * One effect to know: a run's cursor is what its SELECT saw before it wrote, so after a run that
 * wrote to the store (a read in Outlook set \Seen) the next check sees the store moved and asks
 * for one more run, which finds only its own write. That is one run per store write, not per link.
 */
import type { FeatureProfile } from "../admin/profiles.js";
import { isConnectorError } from "../errors.js";
import type { ImapCursor } from "../sync/ports.js";
import type { MailboxLink } from "../state/stateStore.js";
import { linkBucket } from "../state/links.js";
import type { Deps } from "./deps.js";
import { openLinkedMailbox } from "./storeAccess.js";
import type { SyncKind } from "./syncQueue.js";

export type StoreCheckedKind = "voicemail" | "contacts" | "mail";

/**
 * Endpoints seen without CONDSTORE, until when: their links' kinds are run without a check (per
 * instance). Forgotten after an hour, so a store upgraded to CONDSTORE is checked again.
 */
const noCondstore = new Map<string, number>();
const NO_CONDSTORE_MS = 3600_000;

/**
 * Whether a folder moved since a run saved `saved` (RFC 7162 section 3.1.2.1: an unchanged
 * HIGHESTMODSEQ with the same UIDVALIDITY means nothing changed). Unknown counts as moved.
 */
export function folderMoved(saved: ImapCursor | undefined, now: ImapCursor | undefined): boolean {
  if (!saved || !now || saved.highestModseq === undefined || now.highestModseq === undefined) return true;
  if (saved.uidValidity !== now.uidValidity || saved.highestModseq !== now.highestModseq) return true;
  return saved.uidNext !== undefined && now.uidNext !== undefined && saved.uidNext !== now.uidNext;
}

/** The store folder each polled kind watches, for the kinds the link's profile syncs. */
export function watchedFolders(profile: FeatureProfile, kinds: readonly SyncKind[]): Map<StoreCheckedKind, string> {
  const out = new Map<StoreCheckedKind, string>();
  if (kinds.includes("voicemail")) out.set("voicemail", "INBOX");
  if (kinds.includes("contacts") && profile.contacts.enabled) out.set("contacts", profile.contacts.folder);
  // Only Exchange's Inbox has a change notification (src/app/subscriptions.ts): copies from other
  // folders are read by the poll's runs, so such a profile's mail kind is run, not checked.
  if (kinds.includes("mail") && profile.emailToPhone.enabled && profile.emailToPhone.folders.every((f) => f.toLowerCase() === "inbox")) out.set("mail", profile.emailToPhone.storeFolder);
  return out;
}

const lastErrorOf = (link: MailboxLink, kind: SyncKind) => (kind === "voicemail" ? link.lastError : link.kinds?.[kind as keyof NonNullable<MailboxLink["kinds"]>]?.lastError);

export interface StoreCheck {
  /** The kinds to run. */
  run: SyncKind[];
  /** Whether the store was asked (a login and STATUS commands). */
  asked: boolean;
  /** The kinds it would ask for wait for the mailbox's minute (the endpoint's pollMinutes). */
  notThisMinute?: boolean;
}

/**
 * Whether the poll checks this mailbox in the minute of `now`: every `pollMinutes`, in the minute
 * its bucket picks (src/state/links.ts linkBucket), so an endpoint's mailboxes are spread evenly
 * over the interval instead of all logging in at the same minute.
 */
export function checkMinute(linkId: string, pollMinutes: number, now: number): boolean {
  return pollMinutes <= 1 || Math.floor(now / 60_000) % pollMinutes === linkBucket(linkId) % pollMinutes;
}

/** The first minute from `from` in which the link's store is checked (benchmarks, tests). */
export function nextCheckMinute(linkId: string, pollMinutes: number, from = Date.now()): number {
  let t = from;
  while (!checkMinute(linkId, pollMinutes, t)) t += 60_000;
  return t;
}

/**
 * Of the kinds the poll found due on a link, those that need a run: the ones the check cannot
 * answer for, and the ones whose store folder moved.
 */
export async function checkStore(deps: Deps, link: MailboxLink, due: readonly SyncKind[], unreachable: Set<string> = new Set(), now = Date.now()): Promise<StoreCheck> {
  let profile: FeatureProfile;
  let pollMinutes: number;
  try {
    const dir = await deps.directory();
    profile = dir.linkProfile(link);
    pollMinutes = dir.endpoint(link.endpointId).pollMinutes ?? 1;
  } catch { return { run: [...due], asked: false }; } // the run reports it
  const folders = watchedFolders(profile, due.filter((k) => !lastErrorOf(link, k)));
  if (!folders.size || (noCondstore.get(link.endpointId) ?? 0) > now || unreachable.has(link.endpointId)) return { run: [...due], asked: false };
  // Not this mailbox's minute (pollMinutes > 1: the store pushes; the poll only catches a lost
  // push): the watched kinds wait, with nothing read; the others run.
  if (!checkMinute(link.linkId, pollMinutes, now)) return { run: due.filter((k) => !folders.has(k as StoreCheckedKind)), asked: false, notThisMinute: true };
  const saved = await deps.state.storeCursors(link.linkId);
  const ask = [...folders].filter(([k]) => saved[k]?.highestModseq !== undefined);
  const run = due.filter((k) => !ask.some(([a]) => a === k));
  if (!ask.length) return { run, asked: false };
  let session;
  try {
    session = await openLinkedMailbox(deps, link, { folder: "INBOX", removal: { mode: "expunge" } });
  } catch (e) {
    // The run logs in again and records the store's answer. A store that cannot be reached
    // would hold the shard for a timeout per link: the rest of this tick's links of the endpoint
    // are not checked. (A refused credential is the link's own: the others are still checked.)
    if (isConnectorError(e, "IMAP_UNAVAILABLE")) unreachable.add(link.endpointId);
    return { run: [...due], asked: true };
  }
  try {
    if (!session.client.capabilities.has("CONDSTORE")) {
      noCondstore.set(link.endpointId, now + NO_CONDSTORE_MS);
      return { run: [...due], asked: true };
    }
    for (const [kind, folder] of ask) if (folderMoved(saved[kind], await session.folderStatus(folder))) run.push(kind);
    return { run: due.filter((k) => run.includes(k)), asked: true };
  } catch {
    return { run: [...due], asked: true };
  } finally {
    await session.close().catch(() => undefined);
  }
}
