/**
 * Which runs a change in one folder of a voice mailbox starts. The store's push hook
 * (src/app/webhooks.ts) and the IDLE/NOTIFY watchers (src/app/watchers.ts) both ask here, so a
 * store without a hook starts the same runs as one with it:
 * - INBOX: the voice messages; the e-mail copies too when they live in INBOX;
 * - the contacts folder: the contacts sync;
 * - the e-mail copies' folder (heard, deleted on the phone): the e-mail sync, for changes to
 *   messages only: a message added there is the connector's own APPEND of a copy (the phone
 *   makes no e-mail copies; a voice message in INBOX starts the voicemail run), so its echo
 *   starts no e-mail run;
 * - any folder the profile mirrors to the endpoint's backup store: the mirror.
 * The calendar folder is a one-way mirror of Exchange (changes there are our own writes
 * echoing back), so it starts nothing; nor do other folders (a trash folder receiving the
 * messages the connector removed).
 */
import type { FeatureProfile } from "../admin/profiles.js";
import { mirrorsFolder } from "../sync/mirrorFolders.js";

export type StoreChangeKind = "voicemail" | "contacts" | "mail" | "mirror";

/** Folder names compare case-insensitively: stores differ, and INBOX is always so (RFC 3501 section 5.1). */
const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** Events of a store's push that add a message (Dovecot's push_notification: LDA delivery, IMAP APPEND). */
const ADDED = new Set(["MessageNew", "MessageAppend"]);

/** `event`: the push's event name where the trigger knows it (the IDLE/NOTIFY watchers do not). */
export function runsForFolderChange(profile: FeatureProfile, hasBackup: boolean, folder: string, event?: string): StoreChangeKind[] {
  const kinds: StoreChangeKind[] = [];
  const contacts = profile.contacts.enabled && same(folder, profile.contacts.folder);
  if (!contacts && same(folder, "INBOX")) kinds.push("voicemail");
  if (contacts) kinds.push("contacts");
  if (profile.emailToPhone.enabled && same(folder, profile.emailToPhone.storeFolder) && !(event && ADDED.has(event))) kinds.push("mail");
  if (profile.mirror.enabled && hasBackup && mirrorsFolder(profile.mirror, folder)) kinds.push("mirror");
  return kinds;
}
