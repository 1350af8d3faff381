/**
 * Which runs a change in one folder of a voice mailbox starts. The store's push hook
 * (src/app/webhooks.ts) and the IDLE/NOTIFY watchers (src/app/watchers.ts) both ask here, so a
 * store without a hook starts the same runs as one with it:
 * - INBOX: the voice messages; the e-mail copies too when they live in INBOX;
 * - the contacts folder: the contacts sync;
 * - the e-mail copies' folder (heard, deleted on the phone): the e-mail sync;
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

export function runsForFolderChange(profile: FeatureProfile, hasBackup: boolean, folder: string): StoreChangeKind[] {
  const kinds: StoreChangeKind[] = [];
  const contacts = profile.contacts.enabled && same(folder, profile.contacts.folder);
  if (!contacts && same(folder, "INBOX")) kinds.push("voicemail");
  if (contacts) kinds.push("contacts");
  if (profile.emailToPhone.enabled && same(folder, profile.emailToPhone.storeFolder)) kinds.push("mail");
  if (profile.mirror.enabled && hasBackup && mirrorsFolder(profile.mirror, folder)) kinds.push("mirror");
  return kinds;
}
