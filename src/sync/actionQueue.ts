/**
 * The executor loop every planned sync shares: a plan's actions, `parallel` at once, until the
 * plan is done, a failure stops the run, or the run's time is up.
 *
 * - An action's own problem (`itemFailed` answers true once it has recorded it on the item) is
 *   that item's; the run goes on.
 * - Any other failure stops the run: no new action is taken, those in flight settle, then the
 *   first failure is thrown (the cursors stay where they were; the next run starts from the
 *   item rows, as after a crash).
 * - Once `timeUp()` is true (src/sync/mailboxRun.ts LeaseGuard.timeUp) no new action is taken
 *   after the first round of `parallel` (so every run makes progress); the actions in flight
 *   settle and the caller gets the number left, for a follow-up run.
 */
import { ConnectorError, ensureConnectorError } from "../errors.js";

/**
 * Actions in flight for runs over small items (contact cards, calendar entries). Graph's client
 * keeps its own 4 requests in flight per mailbox, and the store connection takes the writes
 * that wait together as one MULTIAPPEND and one UID EXPUNGE (src/imap/groupedWrites.ts): more
 * at once fills those groups. Measured with bench/adopt.bench.ts (2,000 contact pairs,
 * simulator at 20 ms): 8 at once 34 s, 32 at once 17.5 s, 64 at once 16.8 s; with
 * bench/people.bench.ts (1,000 calendar occurrences): 8 at once 6.48 s, 32 at once 2.02 s.
 */
export const SMALL_ITEM_ACTIONS_AT_ONCE = 32;

export interface ActionQueueOptions<A> {
  parallel: number;
  timeUp?: () => boolean;
  apply(action: A): Promise<void>;
  /** The error, typed with the action's context; true when it was the item's own and is recorded. */
  itemFailed(action: A, err: ConnectorError): Promise<boolean>;
  /** Context for the typed error of a failing action (tenant, mailbox, sync key). */
  context(action: A): Record<string, unknown>;
}

export interface ActionQueueResult {
  /** Actions taken (done, or failed as an item problem). */
  taken: number;
  /** Actions left because the run's time was up. */
  left: number;
}

export async function runActionQueue<A>(actions: readonly A[], opts: ActionQueueOptions<A>): Promise<ActionQueueResult> {
  const queue = [...actions];
  const parallel = Math.max(1, Math.min(opts.parallel, queue.length));
  let fatal: ConnectorError | undefined;
  let taken = 0;
  const next = (): A | undefined => (!fatal && queue.length > 0 && (taken < parallel || !opts.timeUp?.()) ? queue.shift() : undefined);
  const worker = async () => {
    for (let action = next(); action !== undefined; action = next()) {
      taken++;
      try {
        await opts.apply(action);
      } catch (e) {
        const err = ensureConnectorError(e, "INTERNAL", opts.context(action));
        let recorded = false;
        if (!err.transient) {
          try { recorded = await opts.itemFailed(action, err); } catch (e2) { fatal ??= ensureConnectorError(e2, "INTERNAL", opts.context(action)); return; }
        }
        if (!recorded) { fatal ??= err; return; }
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  if (fatal) throw fatal;
  return { taken, left: queue.length };
}
