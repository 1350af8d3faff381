/** The per-kind outcome of a run, kept on the link for the status page and alerts. */
import type { KindStatus, MailboxLink } from "../state/stateStore.js";
import type { Deps } from "./deps.js";

export async function recordKindOutcome(deps: Deps, linkId: string, kind: "contacts" | "calendar" | "location" | "mail" | "mirror", update: (k: KindStatus) => KindStatus, success = true, startedWith?: MailboxLink): Promise<void> {
  await deps.state.modifyLink(linkId, (l) => {
    const prev = l.kinds?.[kind] ?? {};
    const next = update(prev);
    const status = success ? { ...next, lastSyncAt: new Date().toISOString(), failureStreak: 0 } : { ...next, failureStreak: (prev.failureStreak ?? 0) + 1 };
    // A successful run used up the administrator's one-run permission to mass delete.
    const massDeleteAllowed = success && kind !== "location" && kind !== "mail" && kind !== "mirror" ? usedPermission(l.massDeleteAllowed, kind, startedWith) : l.massDeleteAllowed;
    return { ...l, kinds: { ...l.kinds, [kind]: status }, massDeleteAllowed };
  });
}

/** Clears the permission a run started with (one granted during the run stays for the next). */
export function usedPermission(now: MailboxLink["massDeleteAllowed"], kind: "voicemail" | "contacts" | "calendar", startedWith: Pick<MailboxLink, "massDeleteAllowed"> | undefined): MailboxLink["massDeleteAllowed"] {
  const used = startedWith?.massDeleteAllowed?.[kind];
  return used !== undefined && now?.[kind] === used ? withoutKind(now, kind) : now;
}

function withoutKind<T extends object>(o: T | undefined, kind: string): T | undefined {
  if (!o || !(kind in o)) return o;
  const { [kind]: _gone, ...rest } = o as Record<string, unknown>;
  return Object.keys(rest).length ? (rest as T) : undefined;
}
