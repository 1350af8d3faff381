/** The per-kind outcome of a run, kept on the link for the status page and alerts. */
import type { KindStatus } from "../state/stateStore.js";
import type { Deps } from "./deps.js";

export async function recordKindOutcome(deps: Deps, linkId: string, kind: "contacts" | "calendar" | "location", update: (k: KindStatus) => KindStatus, success = true): Promise<void> {
  await deps.state.modifyLink(linkId, (l) => {
    const prev = l.kinds?.[kind] ?? {};
    const next = update(prev);
    return { ...l, kinds: { ...l.kinds, [kind]: success ? { ...next, lastSyncAt: new Date().toISOString() } : next } };
  });
}
