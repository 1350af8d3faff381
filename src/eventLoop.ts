/**
 * A loop over thousands of items whose awaits all resolve at once (cards already in memory,
 * read without I/O) never lets the event loop run: promise callbacks (microtasks) are drained
 * before timers and sockets get their turn. 5,000 store cards read that way held the process for
 * about a second, and in a Functions worker that second is also every other invocation's: a Graph
 * notification waiting for its answer (3 s window), a lease renewal, a socket read.
 *
 * `const turn = eventLoopTurns(); for (...) { await turn(); ... }` lets the event loop run once
 * (setImmediate: after pending I/O callbacks) every `every` items.
 */
export function eventLoopTurns(every = 100): () => Promise<void> | undefined {
  let n = 0;
  return () => (++n % every === 0 ? new Promise<void>((resolve) => setImmediate(resolve)) : undefined);
}
