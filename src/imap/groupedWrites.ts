/**
 * Group commit for one folder's writes. An IMAP connection has one command in flight at a time
 * (imapflow queues the rest), so a run that applies eight actions at once still pays one round
 * trip per APPEND and per EXPUNGE. Here the writes that arrive while one is on the wire wait
 * and then go out together: the APPENDs as one MULTIAPPEND (RFC 3502), the removals as one
 * UID EXPUNGE of a UID set (RFC 4315 section 2.1). The first write of a quiet moment goes out
 * at once, so nothing waits longer than the command before it.
 *
 * Each caller still gets its own answer (its new UID, or the error) only when its write is on
 * the store, so the executor's order (new card, old card gone, then the record) and its crash
 * safety are unchanged. A MULTIAPPEND the server refuses stores nothing (RFC 3502 section 2),
 * so its messages are sent again one by one, and only the one at fault fails.
 */
import type { AppendItem } from "./multiAppend.js";

export interface GroupableFolder {
  appendMany(items: AppendItem[]): Promise<number[]>;
  removeMany(uids: number[]): Promise<void>;
}

/** Writes taken at most per command: keeps a MULTIAPPEND's size and a UID set's length modest. */
const MAX_GROUP = 50;

type WritableFolder = GroupableFolder & { append(source: Buffer, flags?: string[]): Promise<number>; remove(uid: number): Promise<unknown> };

/** The same folder (or session) whose `append` and `remove` go out grouped. */
export function groupedWrites<F extends WritableFolder>(folder: F): F {
  const appends = batcher<AppendItem, number>(async (items) => {
    if (items.length === 1) return [await folder.append(items[0]!.source, items[0]!.flags)];
    try {
      return await folder.appendMany(items);
    } catch {
      // All or none (RFC 3502): none stored; each alone tells whose message was refused.
      return items.map((it) => folder.append(it.source, it.flags));
    }
  });
  const removals = batcher<number, void>(async (uids) => {
    if (uids.length === 1) { await folder.remove(uids[0]!); return [undefined]; }
    await folder.removeMany(uids);
    return uids.map(() => undefined);
  });
  return {
    ...folder,
    append: (source: Buffer, flags: string[] = ["\\Seen"]) => appends({ source, flags }),
    remove: (uid: number) => removals(uid),
  };
}

/**
 * Calls `send` with every item submitted while the previous call was running (at most
 * MAX_GROUP at a time); each submit resolves with its own result or rejects with its own error.
 * `send` returns one result (or promise of one) per item, in order.
 */
function batcher<I, O>(send: (items: I[]) => Promise<Array<O | Promise<O>>>): (item: I) => Promise<O> {
  let waiting: Array<{ item: I; resolve: (o: O) => void; reject: (e: unknown) => void }> = [];
  let busy = false;
  const drain = async () => {
    busy = true;
    while (waiting.length) {
      const group = waiting.slice(0, MAX_GROUP);
      waiting = waiting.slice(MAX_GROUP);
      try {
        const results = await send(group.map((w) => w.item));
        await Promise.all(group.map((w, i) => Promise.resolve(results[i]!).then(w.resolve, w.reject)));
      } catch (e) {
        for (const w of group) w.reject(e);
      }
    }
    busy = false;
  };
  return (item) => new Promise<O>((resolve, reject) => {
    waiting.push({ item, resolve, reject });
    if (!busy) void drain();
  });
}
