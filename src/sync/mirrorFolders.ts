/**
 * Which folders of a mailbox the mirror copies (profile `mirror.include` / `mirror.exclude`):
 * exact names (case-insensitive for INBOX only, RFC 3501 section 5.1) or patterns where `*`
 * matches any run of characters (greetings and recorded-name folders are named per vendor:
 * "Greetings", "Greetings/Personal", "RecordedName"). `exclude` wins over `include`.
 */
/** The clock probes' folder (src/imap/mirrorFolder.ts probeClock): the app's own, never mirrored. */
export const PROBE_FOLDER = "umconnect-clock";

export interface MirrorFolderRule { include: string[]; exclude: string[] }

function matches(pattern: string, folder: string): boolean {
  const norm = (s: string) => (s.toUpperCase() === "INBOX" ? "INBOX" : s);
  if (!pattern.includes("*")) return norm(pattern) === norm(folder);
  const re = new RegExp("^" + pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*") + "$");
  return re.test(norm(folder));
}

export function mirrorsFolder(rule: MirrorFolderRule, folder: string): boolean {
  if (folder === PROBE_FOLDER) return false;
  return rule.include.some((p) => matches(p, folder)) && !rule.exclude.some((p) => matches(p, folder));
}

/** The mirrored folders among those production lists (INBOX first, then by name). */
export function mirroredFolders(rule: MirrorFolderRule, folders: string[]): string[] {
  return [...new Set(folders.filter((f) => mirrorsFolder(rule, f)).map((f) => (f.toUpperCase() === "INBOX" ? "INBOX" : f)))]
    .sort((a, b) => (a === "INBOX" ? -1 : b === "INBOX" ? 1 : a < b ? -1 : a > b ? 1 : 0));
}
