/**
 * Per-link item state and cursors, for the sync runs (the caller holds the link's lease):
 *
 *   items     PK linkId    RK syncKey                  per-item three-way state (voicemail)
 *   records   PK linkId|kind RK syncKey               contacts / calendar item state (JSON)
 *   cursors   PK linkId    RK resource                 IMAP and Graph cursors
 *   conflicts PK linkId    RK syncKey|time             losing versions of edit/edit conflicts
 */
import crypto from "node:crypto";
import { ConnectorError, isConnectorError } from "../errors.js";
import type { ConflictRecord, ImapCursor, ItemCounts, ItemRecord, RecordStatePort, SyncCursors, VoicemailStatePort } from "../sync/ports.js";

export type { ConflictRecord, RecordStatePort } from "../sync/ports.js";
import { StateRows } from "./rows.js";
import type { TableClient, TransactionAction } from "@azure/data-tables";
import { bool, entity, getOrUndefined, guard, keyOf, listRows, num, str, unKey, type Row } from "./tables.js";

/** Item row keys are keyOf(syncKey): its safe set starts at "+"; index rows and the run mark sort before. */
const FIRST_ITEM_KEY = "+";
const RUN_MARK = "!run";
const uidKey = (uid: number) => `!u.${uid}`;
const graphKey = (id: string) => `!g.${keyOf(id)}`;
/** Point reads one run keeps in flight (a run touches few items; a burst of changes is read 8 at a time). */
const POINT_READS_IN_FLIGHT = 8;

async function mapLimit<T, R>(xs: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(xs.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, xs.length) }, async () => {
    for (let i = next++; i < xs.length; i = next++) out[i] = await fn(xs[i]!);
  }));
  return out;
}

/** The index rows of one record: its store UID and its Exchange id name it. */
const indexRows = (pk: string) => (r: ItemRecord): TransactionAction[] => [
  ...(r.imapUid !== undefined ? [["upsert", entity(pk, uidKey(r.imapUid), { syncKey: r.syncKey }), "Replace"] as TransactionAction] : []),
  ...(r.graphId !== undefined ? [["upsert", entity(pk, graphKey(r.graphId), { syncKey: r.syncKey }), "Replace"] as TransactionAction] : []),
];

function parseCounts(s: string | undefined): ItemCounts | undefined {
  if (!s) return undefined;
  try {
    const c = JSON.parse(s) as Partial<ItemCounts>;
    return [c.linked, c.unread, c.skipped].every((n) => Number.isInteger(n) && n! >= 0) ? { linked: c.linked!, unread: c.unread!, skipped: c.skipped! } : undefined;
  } catch {
    return undefined; // unreadable counts: the run counts again
  }
}

/** Largest string a Table property holds is 64 KiB (32K UTF-16 characters). */
const MAX_STRING = 32_000;

export class ItemRows extends StateRows {
  // ---- per-link voicemail state (items + cursors) -------------------------------------

  /**
   * The sync core's view of one link's state. The caller holds the link's lease.
   *
   * Rows of the link's partition in `items`: one per item (RowKey = keyOf(syncKey), which
   * starts at "+" or above), and, sorting before them (RowKey "!..."), index rows naming the
   * item that holds a store UID ("!u.<uid>") or an Exchange id ("!g.<id>"), and the run mark
   * "!run". An incremental run reads only the items its changes name (point reads: a filter
   * that ORs row keys scans the partition,
   * https://learn.microsoft.com/en-us/azure/storage/tables/table-storage-design-patterns);
   * index rows answer for messages that vanished and copies that were removed, whose changes
   * carry only a UID or an id. An item and its index rows are written in one entity group
   * transaction (one partition, atomic: https://learn.microsoft.com/en-us/rest/api/storageservices/performing-entity-group-transactions).
   * Index rows are never deleted in the run's path: a stale one is recognised by the item it
   * names not holding that UID or id any more.
   *
   * The first write of each port (one run) also writes the run mark, in the same transaction;
   * the cursors, saved last, name the mark they settle. A mark the cursors do not name means a
   * run stopped between its writes and its cursors, so the counts kept with the cursors are
   * stale (countsStale) and the next run reads and counts every record.
   */
  voicemailState(linkId: string): VoicemailStatePort {
    const pk = keyOf(linkId);
    const ids = { mailboxId: linkId };
    const token = crypto.randomUUID();
    let markRead: string | undefined;
    let marked: Promise<void> | undefined;
    const items = () => this.tables.client("items");
    const submit = async (ops: TransactionAction[]) => {
      const c = await items();
      await guard(() => c.submitTransaction(ops), ids);
    };
    /** Writes `ops` (one item's rows); the first write of the port carries the run mark. */
    const write = async (ops: TransactionAction[]) => {
      if (marked) {
        await marked;
        return submit(ops);
      }
      const p = submit([...ops, ["upsert", entity(pk, RUN_MARK, { mark: token, at: this.now() }), "Replace"]]);
      marked = p;
      p.catch(() => { if (marked === p) marked = undefined; });
      return p;
    };
    return {
      loadItems: async () => {
        const c = await items();
        const out: ItemRecord[] = [];
        await guard(async () => { for await (const row of listRows(c, `PartitionKey eq '${pk}' and RowKey ge '${FIRST_ITEM_KEY}'`)) out.push(toItem(row)); }, ids);
        return out;
      },
      loadItemsByKey: async (syncKeys) => {
        const c = await items();
        const rows = await mapLimit([...new Set(syncKeys)], POINT_READS_IN_FLIGHT, (k) => getOrUndefined(c, pk, keyOf(k)));
        return rows.filter((r): r is Row => r !== undefined).map(toItem);
      },
      lookupKeys: async ({ uids, graphIds }) => {
        const c = await items();
        const byUid = new Map<number, string>();
        const byGraphId = new Map<string, string>();
        await mapLimit([...new Set(uids)], POINT_READS_IN_FLIGHT, async (uid) => { const r = await getOrUndefined(c, pk, uidKey(uid)); const k = r && str(r, "syncKey"); if (k) byUid.set(uid, k); });
        await mapLimit([...new Set(graphIds)], POINT_READS_IN_FLIGHT, async (id) => { const r = await getOrUndefined(c, pk, graphKey(id)); const k = r && str(r, "syncKey"); if (k) byGraphId.set(id, k); });
        return { byUid, byGraphId };
      },
      reindex: async (records) => {
        const ops = records.filter((r) => r.skipped?.code !== "STATE_CORRUPT").flatMap(indexRows(pk));
        // An entity group transaction holds at most 100 operations.
        for (let i = 0; i < ops.length; i += 100) await submit(ops.slice(i, i + 100));
      },
      putItem: async (item) => {
        await write([["upsert", itemEntity(pk, item), "Replace"], ...indexRows(pk)(item)]);
      },
      deleteItem: async (syncKey) => {
        try {
          await write([["delete", { partitionKey: pk, rowKey: keyOf(syncKey) }]]);
        } catch (e) {
          if (!isConnectorError(e, "NOT_FOUND")) throw e;
        }
      },
      loadCursors: async () => {
        const [row, mark] = await Promise.all([
          (async () => getOrUndefined(await this.tables.client("cursors"), pk, "voicemail"))(),
          (async () => getOrUndefined(await items(), pk, RUN_MARK))(),
        ]);
        markRead = mark && str(mark, "mark");
        if (!row) return {};
        const uidValidity = num(row, "imapUidValidity");
        const imap: ImapCursor | undefined = uidValidity === undefined ? undefined : { uidValidity, highestModseq: str(row, "imapHighestModseq"), uidNext: num(row, "imapUidNext") };
        const counts = parseCounts(str(row, "itemCounts"));
        const out: SyncCursors = { imap, deltaLink: str(row, "deltaLink") };
        if (counts) out.counts = counts;
        if (markRead !== undefined && markRead !== str(row, "settles")) out.countsStale = true;
        return out;
      },
      saveCursors: async (cursors) => {
        if ((cursors.deltaLink?.length ?? 0) > MAX_STRING) throw new ConnectorError("INTERNAL", "deltaLink longer than a table property holds", ids);
        if (marked) await marked.catch(() => undefined);
        const c = await this.tables.client("cursors");
        await guard(() => c.upsertEntity(entity(pk, "voicemail", {
          imapUidValidity: cursors.imap?.uidValidity, imapHighestModseq: cursors.imap?.highestModseq, imapUidNext: cursors.imap?.uidNext,
          deltaLink: cursors.deltaLink, itemCounts: cursors.counts ? JSON.stringify(cursors.counts) : undefined,
          // The caller's counts cover this port's writes, or (none) the writes the mark it read names.
          settles: marked ? token : markRead, savedAt: new Date(this.now()).toISOString(),
        }), "Replace"), ids);
      },
    };
  }

  // ---- per-link contacts / calendar state -----------------------------------------------

  /**
   * Item records of one kind for one link, as JSON (the records are small and their shape
   * belongs to the sync core of that kind), with the kind's cursor row. The caller holds the
   * link's lease for that kind.
   *
   * Same layout as the voicemail items: record rows (RowKey keyOf(syncKey), "+" and above) and,
   * sorting before them, index rows naming the record that holds a store UID or an Exchange id
   * (contacts only: a calendar change names its record by key) and the run mark "!run". A
   * record's index rows are written before it (plain upserts); index rows are not deleted in
   * the run's path (a stale one is recognised by the record not holding that UID or id). The
   * cursors name the mark they settle; `countsStale` on load says a run stopped midway.
   */
  recordState<T extends { syncKey: string }, C extends object>(linkId: string, kind: "contacts" | "calendar" | "mail"): RecordStatePort<T, C> {
    const pk = keyOf(`${linkId}|${kind}`);
    const ids = { mailboxId: linkId };
    const token = crypto.randomUUID();
    const indexed = kind === "contacts";
    let markRead: string | undefined;
    let marked: Promise<void> | undefined;
    const records = () => this.tables.client("records");
    const upsert = async (e: ReturnType<typeof entity>) => { const c = await records(); await guard(() => c.upsertEntity(e, "Replace"), ids); };
    /** The run mark goes first, once per port: a write the cursors do not settle is then always seen. */
    const markFirst = async () => {
      if (!marked) {
        const p = upsert(entity(pk, RUN_MARK, { mark: token, at: this.now() }));
        marked = p;
        p.catch(() => { if (marked === p) marked = undefined; });
      }
      await marked;
    };
    // Index rows this port has written (a record written twice in a run names the same UID).
    const indexWritten = new Set<string>();
    const indexOf = (r: T) => (indexed ? indexRows(pk)(r as unknown as ItemRecord).map((op) => op[1] as ReturnType<typeof entity>) : []);
    return {
      loadItems: async () => {
        const c = await records();
        const out: T[] = [];
        await guard(async () => { for await (const row of listRows(c, `PartitionKey eq '${pk}' and RowKey ge '${FIRST_ITEM_KEY}'`)) out.push(toRecord<T>(row)); }, ids);
        if (indexed && out.some(isCorrupt)) await attachIndex(c, pk, out);
        return out;
      },
      loadItemsByKey: async (syncKeys) => {
        const c = await records();
        const rows = await mapLimit([...new Set(syncKeys)], POINT_READS_IN_FLIGHT, (k) => getOrUndefined(c, pk, keyOf(k)));
        return rows.filter((r): r is Row => r !== undefined).map((r) => toRecord<T>(r));
      },
      lookupKeys: async ({ uids, graphIds }) => {
        const c = await records();
        const byUid = new Map<number, string>();
        const byGraphId = new Map<string, string>();
        if (!indexed) return { byUid, byGraphId };
        await mapLimit([...new Set(uids)], POINT_READS_IN_FLIGHT, async (uid) => { const r = await getOrUndefined(c, pk, uidKey(uid)); const k = r && str(r, "syncKey"); if (k) byUid.set(uid, k); });
        await mapLimit([...new Set(graphIds)], POINT_READS_IN_FLIGHT, async (id) => { const r = await getOrUndefined(c, pk, graphKey(id)); const k = r && str(r, "syncKey"); if (k) byGraphId.set(id, k); });
        return { byUid, byGraphId };
      },
      reindex: async (items) => {
        const rows = items.filter((r) => !isCorrupt(r)).flatMap(indexOf);
        await mapLimit(rows, POINT_READS_IN_FLIGHT, upsert);
      },
      // Index rows before their record, each a plain upsert (Azurite's entity group transactions
      // slow down with the partition's size; atomicity is not needed): an index row whose record
      // does not hold its UID or id is stale and ignored, and a record is never without its rows.
      putItem: async (item) => {
        const data = JSON.stringify(item);
        if (data.length > MAX_STRING) throw new ConnectorError("INTERNAL", "item record longer than a table property holds", ids);
        await markFirst();
        const fresh = indexOf(item).filter((e) => !indexWritten.has(`${e.rowKey}|${String(e.syncKey)}`));
        await Promise.all(fresh.map(upsert));
        for (const e of fresh) indexWritten.add(`${e.rowKey}|${String(e.syncKey)}`);
        await upsert(entity(pk, keyOf(item.syncKey), { data }));
      },
      putItems: async (list) => {
        await markFirst();
        if (indexed) await mapLimit(list.flatMap(indexOf), POINT_READS_IN_FLIGHT, upsert);
        const ops: TransactionAction[] = list.map((item) => {
          const data = JSON.stringify(item);
          if (data.length > MAX_STRING) throw new ConnectorError("INTERNAL", "item record longer than a table property holds", ids);
          return ["upsert", entity(pk, keyOf(item.syncKey), { data }), "Replace"];
        });
        const c = await this.tables.client("records");
        // https://learn.microsoft.com/en-us/rest/api/storageservices/performing-entity-group-transactions: at most 100 operations.
        for (let i = 0; i < ops.length; i += 100) await guard(() => c.submitTransaction(ops.slice(i, i + 100)), ids);
      },
      deleteItem: async (syncKey) => {
        try {
          await markFirst();
          const c = await records();
          await guard(() => c.deleteEntity(pk, keyOf(syncKey)), ids);
        } catch (e) {
          if (!isConnectorError(e, "NOT_FOUND")) throw e;
        }
      },
      loadCursors: async () => {
        const [row, mark] = await Promise.all([
          (async () => getOrUndefined(await this.tables.client("cursors"), keyOf(linkId), kind))(),
          (async () => getOrUndefined(await records(), pk, RUN_MARK))(),
        ]);
        markRead = mark && str(mark, "mark");
        if (!row?.data) return undefined;
        let out: C & { countsStale?: boolean };
        try { out = JSON.parse(String(row.data)) as C; } catch { return undefined; } // unreadable cursors: a full run
        if (markRead !== undefined && markRead !== str(row, "settles")) out.countsStale = true;
        return out;
      },
      saveCursors: async (cursors) => {
        const { countsStale: _no, ...kept } = cursors as C & { countsStale?: boolean };
        const data = JSON.stringify(kept);
        if (data.length > MAX_STRING) throw new ConnectorError("INTERNAL", "cursors longer than a table property holds", ids);
        if (marked) await marked.catch(() => undefined);
        const c = await this.tables.client("cursors");
        await guard(() => c.upsertEntity(entity(keyOf(linkId), kind, { data, settles: marked ? token : markRead, savedAt: new Date(this.now()).toISOString() }), "Replace"), ids);
      },
    };
  }

  /** Keeps the losing version of an edit/edit conflict (nothing is lost; the admin can restore it). */
  async putConflict(linkId: string, c: ConflictRecord): Promise<void> {
    const client = await this.tables.client("conflicts");
    const content = c.content.length > MAX_STRING ? c.content.slice(0, MAX_STRING) : c.content;
    // Keyed by content: a run repeated after a crash records the same losing version once.
    const rk = keyOf(`${c.syncKey}|${crypto.createHash("sha256").update(c.content).digest("base64url").slice(0, 16)}`);
    try {
      await guard(() => client.createEntity(entity(keyOf(linkId), rk, { ...c, content, truncated: c.content.length > MAX_STRING })), { mailboxId: linkId });
    } catch (e) {
      if (!isConnectorError(e, "STATE_CONFLICT")) throw e;
    }
  }

  async listConflicts(linkId: string): Promise<ConflictRecord[]> {
    const client = await this.tables.client("conflicts");
    const out: ConflictRecord[] = [];
    await guard(async () => {
      for await (const row of client.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${keyOf(linkId)}'` } })) {
        out.push({ syncKey: String(row.syncKey), at: String(row.at), kind: row.kind as ConflictRecord["kind"], loser: row.loser as ConflictRecord["loser"], content: String(row.content), summary: str(row as Row, "summary") });
      }
    });
    return out.sort((a, b) => a.at.localeCompare(b.at));
  }
}

function itemEntity(pk: string, i: ItemRecord) {
  return entity(pk, keyOf(i.syncKey), {
    syncKey: i.syncKey, imapUid: i.imapUid, graphId: i.graphId, agreedSeen: i.agreedSeen, pendingCreate: i.pendingCreate,
    skippedCode: i.skipped?.code, skippedMessage: i.skipped?.message.slice(0, 1000),
    receivedAt: i.receivedAt, graphElsewhere: i.graphElsewhere, detached: i.detached,
  });
}

/**
 * A stored item row as a record. A row whose fields have the wrong types (written by hand, by
 * a bug, or cut short) comes back as a skipped record with STATE_CORRUPT: the executor leaves
 * that item alone and shows it, and the row stays as it is for the administrator.
 */
function toItem(row: Row): ItemRecord {
  const code = str(row, "skippedCode");
  const syncKey = str(row, "syncKey");
  const problems: string[] = [];
  const optional = (name: string, type: "number" | "string" | "boolean") => { if (row[name] !== undefined && row[name] !== null && typeof row[name] !== type) problems.push(`${name} is not a ${type}`); };
  if (!syncKey) problems.push("no syncKey");
  else if (keyOf(syncKey) !== row.rowKey) problems.push("syncKey does not match the row key");
  optional("imapUid", "number"); optional("graphId", "string"); optional("agreedSeen", "boolean"); optional("pendingCreate", "boolean");
  optional("receivedAt", "string"); optional("graphElsewhere", "boolean");
  const uid = row.imapUid;
  if (typeof uid === "number" && !(Number.isInteger(uid) && uid > 0)) problems.push("imapUid is not a UID");
  const detached = row.detached;
  if (detached !== undefined && detached !== null && detached !== "imap" && detached !== "graph") problems.push("detached is neither imap nor graph");
  if (problems.length) {
    return { syncKey: unKey(row.rowKey ?? ""), agreedSeen: false, pendingCreate: false, skipped: { code: "STATE_CORRUPT", message: `stored item row unreadable: ${problems.join(", ")}` } };
  }
  return {
    syncKey: syncKey!, imapUid: num(row, "imapUid"), graphId: str(row, "graphId"), agreedSeen: bool(row, "agreedSeen"),
    pendingCreate: bool(row, "pendingCreate"), skipped: code ? { code, message: str(row, "skippedMessage") ?? "" } : undefined,
    receivedAt: str(row, "receivedAt"), graphElsewhere: bool(row, "graphElsewhere") || undefined, detached: str(row, "detached") as ItemRecord["detached"],
  };
}

const isCorrupt = (r: unknown) => (r as { skipped?: { code?: string } }).skipped?.code === "STATE_CORRUPT";

/**
 * A stored record row as a record. A row that is not a JSON object with its own sync key
 * (written by hand, by a bug, or cut short) comes back as a record skipped with STATE_CORRUPT:
 * the executor leaves that item alone and shows it, and the row stays for the administrator.
 */
function toRecord<T>(row: Row): T {
  const key = unKey(row.rowKey ?? "");
  let problem: string;
  try {
    const v = JSON.parse(String(row.data)) as unknown;
    if (v && typeof v === "object" && !Array.isArray(v) && typeof (v as { syncKey?: unknown }).syncKey === "string") {
      if (keyOf((v as { syncKey: string }).syncKey) === row.rowKey) return v as T;
      problem = "syncKey does not match the row key";
    } else problem = "not a record with a syncKey";
  } catch {
    problem = "not JSON";
  }
  return { syncKey: key, skipped: { code: "STATE_CORRUPT", message: `stored record row unreadable: ${problem}` } } as T;
}

/** The UID and Exchange id the index rows give corrupt records (a full load that found some). */
async function attachIndex<T>(c: TableClient, pk: string, out: T[]): Promise<void> {
  const corrupt = new Map((out as Array<{ syncKey: string; skipped?: { code: string }; imapUid?: number; graphId?: string }>).filter(isCorrupt).map((r) => [r.syncKey, r]));
  await guard(async () => {
    for await (const row of listRows(c, `PartitionKey eq '${pk}' and RowKey ge '!g.' and RowKey lt '!v'`)) {
      const r = corrupt.get(str(row, "syncKey") ?? "");
      const rk = row.rowKey ?? "";
      if (!r) continue;
      if (rk.startsWith("!u.")) r.imapUid = Number(rk.slice(3));
      else if (rk.startsWith("!g.")) r.graphId = unKey(rk.slice(3));
    }
  });
}
