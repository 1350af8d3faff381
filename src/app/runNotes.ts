/**
 * Puts a finished run into its link's bounded history (src/state/runHistory.ts) for the status
 * page: runs that wrote something, and failures. Never fails or delays the run beyond its own
 * bounded write: a history that cannot be written is logged and skipped.
 */
import type { Deps } from "./deps.js";
import type { SyncRequest } from "./syncQueue.js";
import { isConnectorError } from "../errors.js";
import { RunHistory } from "../state/runHistory.js";
import { withDeadline } from "../timeouts.js";

const NOTE_DEADLINE_MS = 2_000;

export async function noteRun(deps: Deps, req: SyncRequest, kind: string, started: number, done: { result?: unknown; error?: unknown }): Promise<void> {
  const report = (done.result as { status?: string; report?: { actions?: Record<string, number> } } | undefined);
  const actions = Object.fromEntries(Object.entries(report?.report?.actions ?? {}).filter(([, n]) => typeof n === "number" && n > 0));
  const failed = done.error !== undefined;
  if (!failed && (report?.status !== "ran" || !Object.keys(actions).length)) return;
  const now = Date.now();
  try {
    await withDeadline(new RunHistory(deps.state).record(req.linkId, {
      at: new Date(started).toISOString(), kind, reason: req.reason, outcome: failed ? "failed" : "ran",
      ...(failed ? { error: isConnectorError(done.error) ? done.error.code : "INTERNAL" } : { actions }),
      ms: now - started, ...(req.at ? { lagMs: Math.max(0, now - req.at) } : {}),
    }), NOTE_DEADLINE_MS, "STATE_UNAVAILABLE", "writing the run history");
  } catch (e) {
    deps.log.warn("runHistory.write.failed", { linkId: req.linkId, error: e });
  }
}
