/**
 * The disaster-recovery mirror's state (src/sync/mirrorSync.ts), one partition per link and
 * folder in the `mirror` table:
 *
 *   PK keyOf(linkId|folder)  RK "p.<hash>"   one pair: a message the mirror copied (JSON)
 *                            RK "j.<hash>"   journal: the APPENDs of one batch about to be made
 *                                            (JSON list; <hash> of the batch's first identity)
 *                            RK "!cursor"    the cursors of both folders (saved last)
 *
 * <hash> is a SHA-256 of the message identity (identities hold any Message-ID, longer than a
 * RowKey should be). Pairs and journal rows share the partition so that one entity group
 * transaction (at most 100 operations, one partition, atomic:
 * https://learn.microsoft.com/en-us/rest/api/storageservices/performing-entity-group-transactions)
 * writes a batch's pairs and clears its journal together.
 *
 * A batch's journal is one row (or a few, when its identities are long), not one per message:
 * the journal is written before every batch of APPENDs, and a row per message made it as many
 * Table operations as copies, the greater part of an initial copy's time. A string property
 * holds at most 64 KiB (32 K UTF-16 characters,
 * https://learn.microsoft.com/en-us/rest/api/storageservices/understanding-the-table-service-data-model#property-types),
 * so a row takes entries up to JOURNAL_ROW_CHARS. Rows of one entry each (the format before)
 * read the same.
 */
import crypto from "node:crypto";
import type { TransactionAction } from "@azure/data-tables";
import type { MirrorJournalEntry, MirrorPair } from "../sync/mirrorPlanner.js";
import type { MirrorCursors, MirrorStatePort } from "../sync/mirrorPorts.js";
import { ConnectorError } from "../errors.js";
import { StateRows } from "./rows.js";
import { entity, getOrUndefined, guard, keyOf, listRows, mapLimit, str } from "./tables.js";

const CURSOR = "!cursor";
const TRANSACTION_OPS = 100;
/** Pair rows an incremental run keeps in flight. */
const POINT_READS_AT_ONCE = 32;
/** JSON characters of journal entries per row: under the 32 K characters of a string property. */
const JOURNAL_ROW_CHARS = 30_000;
const hash = (identity: string) => crypto.createHash("sha256").update(identity).digest("base64url");
const pairKey = (identity: string) => `p.${hash(identity)}`;
const journalKey = (identity: string) => `j.${hash(identity)}`;

export class MirrorRows extends StateRows {
  mirrorState(linkId: string, folder: string): MirrorStatePort {
    const pk = keyOf(`${linkId}|${folder}`);
    const ids = { mailboxId: linkId };
    const table = () => this.tables.client("mirror");
    // The journal row of each identity journalled or loaded through this port, and the
    // identities each row holds: a row is cleared once all of its identities are.
    const rowOf = new Map<string, string>();
    const rows = new Map<string, MirrorJournalEntry[]>();
    const remember = (key: string, entries: MirrorJournalEntry[]) => {
      rows.set(key, entries);
      for (const e of entries) rowOf.set(e.identity, key);
    };
    const submit = async (ops: TransactionAction[]) => {
      const c = await table();
      for (let i = 0; i < ops.length; i += TRANSACTION_OPS) {
        const chunk = ops.slice(i, i + TRANSACTION_OPS);
        await guard(() => c.submitTransaction(chunk), ids);
      }
    };
    /** The operations that clear these identities' journal entries: a row emptied is marked cleared, a row with entries left is rewritten with them. */
    const journalRows = (identities: string[]): TransactionAction[] => {
      const gone = new Set(identities);
      const keys = new Set(identities.map((id) => rowOf.get(id) ?? journalKey(id)));
      return [...keys].map((key) => {
        const left = (rows.get(key) ?? []).filter((e) => !gone.has(e.identity));
        return ["upsert", left.length ? entity(pk, key, { data: JSON.stringify(left) }) : entity(pk, key, { cleared: true }), "Replace"] as TransactionAction;
      });
    };
    return {
      loadCursors: async () => {
        const row = await getOrUndefined(await table(), pk, CURSOR);
        const data = row && str(row, "data");
        return data ? (JSON.parse(data) as MirrorCursors) : {};
      },
      loadPairs: async (identities) => {
        const c = await table();
        const pairs: MirrorPair[] = [];
        const journal: MirrorJournalEntry[] = [];
        if (identities) {
          // Point reads, a few at a time (each is one Table transaction, as a listing page is).
          const rows = await mapLimit([...new Set(identities)], POINT_READS_AT_ONCE, (id) => getOrUndefined(c, pk, pairKey(id)));
          for (const row of rows) { const data = row && str(row, "data"); if (data) pairs.push(JSON.parse(data) as MirrorPair); }
        }
        await guard(async () => {
          for await (const row of listRows(c, `PartitionKey eq '${pk}' and RowKey ge 'j.' and RowKey lt '${identities ? "k" : "q"}'`)) {
            const data = str(row, "data");
            if (!data) continue;
            if (String(row.rowKey).startsWith("p.")) pairs.push(JSON.parse(data) as MirrorPair);
            else if (String(row.rowKey).startsWith("j.")) {
              const parsed = JSON.parse(data) as MirrorJournalEntry | MirrorJournalEntry[];
              const entries = Array.isArray(parsed) ? parsed : [parsed];
              remember(String(row.rowKey), entries);
              journal.push(...entries);
            }
          }
        }, ids);
        return { pairs, journal };
      },
      journal: async (entries) => {
        const chunks: MirrorJournalEntry[][] = [];
        let size = Infinity;
        for (const e of entries) {
          const n = JSON.stringify(e).length + 1;
          if (size + n > JOURNAL_ROW_CHARS) { chunks.push([]); size = 0; }
          chunks.at(-1)!.push(e);
          size += n;
        }
        const keys = chunks.map((c) => journalKey(c[0]!.identity));
        const ops = chunks.map((c, i) => ["upsert", entity(pk, keys[i]!, { data: JSON.stringify(c) }), "Replace"] as TransactionAction);
        // One transaction: a batch's journal is written whole or not at all.
        if (ops.length > TRANSACTION_OPS) throw new ConnectorError("INTERNAL", `a mirror journal of ${entries.length} entries needs ${ops.length} rows, more than one transaction holds`, ids);
        await submit(ops);
        chunks.forEach((c, i) => remember(keys[i]!, c));
      },
      commit: async ({ put, drop, clearJournal }) => {
        // One operation per entity and transaction: a pair put and its own journal delete are
        // different rows, so they may share one.
        const ops: TransactionAction[] = [
          ...put.map((p) => ["upsert", entity(pk, pairKey(p.identity), { data: JSON.stringify(p) }), "Replace"] as TransactionAction),
          ...drop.map((id) => ["upsert", entity(pk, pairKey(id), { gone: true }), "Replace"] as TransactionAction),
          ...journalRows(clearJournal),
        ];
        // Deletes inside a transaction fail as a whole on a row that is not there (404); a row
        // without data reads as absent, and is removed for good outside the run's path.
        await submit(ops);
        for (const id of clearJournal) {
          const key = rowOf.get(id);
          rowOf.delete(id);
          if (key) { const left = rows.get(key)?.filter((e) => rowOf.get(e.identity) === key); if (left?.length) rows.set(key, left); else rows.delete(key); }
        }
      },
      saveCursors: async (cursors) => {
        const c = await table();
        await guard(() => c.upsertEntity(entity(pk, CURSOR, { data: JSON.stringify(cursors), savedAt: new Date(this.now()).toISOString() }), "Replace"), ids);
      },
    };
  }

  /** Removes the emptied rows (dropped pairs, cleared journal entries) of one folder's partition. */
  async compactMirror(linkId: string, folder: string): Promise<number> {
    const pk = keyOf(`${linkId}|${folder}`);
    const c = await this.tables.client("mirror");
    const empty: TransactionAction[] = [];
    for await (const row of listRows(c, `PartitionKey eq '${pk}' and RowKey ge 'j.' and RowKey lt 'q'`, ["PartitionKey", "RowKey", "data"])) {
      if (!str(row, "data")) empty.push(["delete", { partitionKey: pk, rowKey: String(row.rowKey) }]);
    }
    for (let i = 0; i < empty.length; i += TRANSACTION_OPS) await guard(() => c.submitTransaction(empty.slice(i, i + TRANSACTION_OPS)));
    return empty.length;
  }
}
