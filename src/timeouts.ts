/**
 * Deadlines for calls that could otherwise hang a sync run (and with it, through the renewed
 * lease, the whole mailbox): a stuck socket, a server that never answers.
 */
import { ConnectorError, type ErrorCode, type ErrorIds } from "./errors.js";

/** Rejects with a transient `code` error when `work` takes longer than `ms`. */
export async function withDeadline<T>(work: Promise<T>, ms: number, code: ErrorCode, what: string, ids: ErrorIds = {}): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ConnectorError(code, `${what} did not finish within ${ms} ms`, { ...ids, transient: true })), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Graph requests: Outlook answers in seconds; 60 s means something is stuck. */
export const GRAPH_REQUEST_DEADLINE_MS = 60_000;
/** One IMAP command (a message fetch of up to 50 MB included). */
export const IMAP_COMMAND_DEADLINE_MS = 120_000;
/** A whole sync run stays under the 5-minute function timeout (host.json). */
export const SYNC_RUN_DEADLINE_MS = 240_000;
