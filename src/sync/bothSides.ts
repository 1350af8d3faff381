/**
 * A run's first reads, the voice store's changes and Exchange's delta, do not depend on each
 * other: they go out together, so a run waits for the slower of the two, not for their sum (an
 * IMAP SELECT with QRESYNC and a Graph delta request are both a round trip or more).
 * When one fails, the other is waited for before the failure is thrown: nothing of the run is
 * still reading when it reports (its lease ends then).
 */
export async function readBothSides<S, E>(store: () => Promise<S>, exchange: () => Promise<E>): Promise<[S, E]> {
  const [s, e] = await Promise.allSettled([store(), exchange()]);
  if (s.status === "rejected") throw s.reason;
  if (e.status === "rejected") throw e.reason;
  return [s.value, e.value];
}
