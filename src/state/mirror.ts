/**
 * The disaster-recovery mirror's state (src/sync/mirrorSync.ts), one partition per link and
 * folder in the `mirror` table:
 *
 *   PK keyOf(linkId|folder)  RK "p.<hash>"   one pair: a message the mirror copied (JSON)
 *                            RK "j.<hash>"   one journal entry: an APPEND about to be made
 *                            RK "!cursor"    the cursors of both folders (saved last)
 *
 * <hash> is a SHA-256 of the message identity (identities hold any Message-ID, longer than a
 * RowKey should be). Pairs and journal entries share the partition so that one entity group
 * transaction (at most 100 operations, one partition, atomic:
 * https://learn.microsoft.com/en-us/rest/api/storageservices/performing-entity-group-transactions)
 * writes a batch's pairs and clears its journal together.
 */
import crypto from "node:crypto";
import type { TransactionAction } from "@azure/data-tables";
import type { MirrorJournalEntry, MirrorPair } from "../sync/mirrorPlanner.js";
import type { MirrorCursors, MirrorStatePort } from "../sync/mirrorPorts.js";
import { StateRows } from "./rows.js";
import { entity, getOrUndefined, guard, keyOf, listRows, str } from "./tables.js";

const CURSOR = "!cursor";
const TRANSACTION_OPS = 100;
const hash = (identity: string) => crypto.createHash("sha256").update(identity).digest("base64url");
const pairKey = (identity: string) => `p.${hash(identity)}`;
const journalKey = (identity: string) => `j.${hash(identity)}`;

export class MirrorRows extends StateRows {
  mirrorState(linkId: string, folder: string): MirrorStatePort {
    const pk = keyOf(`${linkId}|${folder}`);
    const ids = { mailboxId: linkId };
    const table = () => this.tables.client("mirror");
    const submit = async (ops: TransactionAction[]) => {
      const c = await table();
      for (let i = 0; i < ops.length; i += TRANSACTION_OPS) {
        const chunk = ops.slice(i, i + TRANSACTION_OPS);
        await guard(() => c.submitTransaction(chunk), ids);
      }
    };
    return {
      loadCursors: async () => {
        const row = await getOrUndefined(await table(), pk, CURSOR);
        const data = row && str(row, "data");
        return data ? (JSON.parse(data) as MirrorCursors) : {};
      },
      loadPairs: async () => {
        const c = await table();
        const pairs: MirrorPair[] = [];
        const journal: MirrorJournalEntry[] = [];
        await guard(async () => {
          for await (const row of listRows(c, `PartitionKey eq '${pk}' and RowKey ge 'j.' and RowKey lt 'q'`)) {
            const data = str(row, "data");
            if (!data) continue;
            if (String(row.rowKey).startsWith("p.")) pairs.push(JSON.parse(data) as MirrorPair);
            else if (String(row.rowKey).startsWith("j.")) journal.push(JSON.parse(data) as MirrorJournalEntry);
          }
        }, ids);
        return { pairs, journal };
      },
      journal: async (entries) => {
        await submit(entries.map((e) => ["upsert", entity(pk, journalKey(e.identity), { data: JSON.stringify(e) }), "Replace"] as TransactionAction));
      },
      commit: async ({ put, drop, clearJournal }) => {
        // One operation per entity and transaction: a pair put and its own journal delete are
        // different rows, so they may share one.
        const ops: TransactionAction[] = [
          ...put.map((p) => ["upsert", entity(pk, pairKey(p.identity), { data: JSON.stringify(p) }), "Replace"] as TransactionAction),
          ...drop.map((id) => ["upsert", entity(pk, pairKey(id), { gone: true }), "Replace"] as TransactionAction),
          ...clearJournal.map((id) => ["upsert", entity(pk, journalKey(id), { cleared: true }), "Replace"] as TransactionAction),
        ];
        // Deletes inside a transaction fail as a whole on a row that is not there (404); a row
        // without data reads as absent, and is removed for good outside the run's path.
        await submit(ops);
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
