/**
 * The executor loop every planned sync shares: a plan's actions, `parallel` at once, until the
 * plan is done, a failure stops the run, or the run's time is up.
 *
 * - An action's own problem (`itemFailed` answers true once it has recorded it on the item) is
 *   that item's; the run goes on.
 * - Any other failure stops the run: no new action is taken, those in flight settle, then the
 *   first failure is thrown (the cursors stay where they were; the next run starts from the
 *   item rows, as after a crash).
 * - Actions planned while the first ones run (`more`: adoption's matches by content) join the
 *   lines when they come; until then, workers with nothing to take wait for them.
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

/**
 * Actions in flight whose Graph work is one batchable request each (src/graph/batch.ts): enough
 * to keep the mailbox's 4 slots each busy with a full batch of 20 while as many again write
 * their state rows. Measured with bench/adopt.bench.ts (5,000 voice messages adopted, one
 * PATCH each, simulator at 20 ms): 8 at once 41.7 s (batches of 3.9 on average), 80 at once
 * 35.7 s (9.7), 160 at once 34.2 s (19.3).
 */
export const BATCHED_ACTIONS_AT_ONCE = 160;

export interface ActionQueueOptions<A> {
  parallel: number;
  /**
   * Light actions (one small Graph request and a state row, no audio) may run more at once
   * than `parallel`: up to `light.parallel` in all. The extra workers take only light actions
   * (the first in the queue); heavy ones stay `parallel` at once, so the memory and the time
   * a run needs to settle once its time is up stay as they were. Why more: the Graph client
   * sends the small writes that wait together as one batch (src/graph/batch.ts), and it takes
   * more than 4 waiting to fill the batches. The price: a run may still have that many light
   * actions to settle when its time is up (160 small writes: seconds, against a run budget of
   * minutes and a hard deadline beyond it).
   */
  light?: { is(action: A): boolean; parallel: number };
  /**
   * Actions planned while these run (adoption's matches by content, which need every
   * unmatched store message read and parsed first): added behind the plan's actions when they
   * come. Workers that find nothing to take wait for them. A rejection stops the run like any
   * other failure that is not an item's own.
   */
  more?: Promise<readonly A[]>;
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
  // Two lines in plan order: light actions, and the rest. Workers that take any action take the
  // one planned first of the two heads; light-only workers take the light line's head.
  const isLight = opts.light?.is ?? (() => false);
  const lightLine: Array<{ i: number; a: A }> = [];
  const heavyLine: Array<{ i: number; a: A }> = [];
  let planned = 0;
  const add = (as: readonly A[]) => { for (const a of as) (isLight(a) ? lightLine : heavyLine).push({ i: planned++, a }); };
  add(actions);
  let fatal: ConnectorError | undefined;
  // Until the later actions come, workers are sized for what they may bring.
  let coming = opts.more?.then(add, (e: unknown) => { fatal ??= ensureConnectorError(e); }).finally(() => { coming = undefined; });
  const parallel = Math.max(1, coming ? opts.parallel : Math.min(opts.parallel, actions.length));
  const lightOnly = opts.light ? Math.max(0, (coming ? opts.light.parallel : Math.min(opts.light.parallel, lightLine.length)) - parallel) : 0;
  let taken = 0;
  // The first `parallel` actions are taken whatever the time (so every run makes progress);
  // later ones, the light-only workers' included, only while the run has time.
  const mayTake = () => !fatal && (taken < parallel || !opts.timeUp?.());
  const next = (): A | undefined => {
    if (!mayTake()) return undefined;
    const line = !heavyLine.length || (lightLine.length && lightLine[0]!.i < heavyLine[0]!.i) ? lightLine : heavyLine;
    return line.shift()?.a;
  };
  const nextLight = (): A | undefined => (mayTake() ? lightLine.shift()?.a : undefined);
  const worker = async (take: () => A | undefined) => {
    for (;;) {
      const action = take();
      if (action === undefined) {
        if (!coming || !mayTake()) return;
        await coming;
        continue;
      }
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
  await Promise.all([...Array.from({ length: parallel }, () => worker(next)), ...Array.from({ length: lightOnly }, () => worker(nextLight))]);
  // Time up or a failure before the later actions came: the run ends without them (they are
  // the next run's, as any action left), but their failure is still the run's.
  if (coming) await coming;
  if (fatal) throw fatal;
  return { taken, left: lightLine.length + heavyLine.length };
}
