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
import { bool, entity, getOrUndefined, guard, keyOf, listRows, mapLimit, num, str, unKey, type Entity, type Row } from "./tables.js";

/** Item row keys are keyOf(syncKey): its safe set starts at "+"; index rows and the run mark sort before. */
const FIRST_ITEM_KEY = "+";
const RUN_MARK = "!run";
const uidKey = (uid: number) => `!u.${uid}`;
const graphKey = (id: string) => `!g.${keyOf(id)}`;
/** Point reads one run keeps in flight (a run touches few items; a burst of changes is read 8 at a time). */
const POINT_READS_IN_FLIGHT = 8;

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

/** The voicemail cursors row's IMAP cursor (its own columns; the other kinds keep it in their JSON). */
function voicemailImapCursor(row: Row): ImapCursor | undefined {
  const uidValidity = num(row, "imapUidValidity");
  return uidValidity === undefined ? undefined : { uidValidity, highestModseq: str(row, "imapHighestModseq"), uidNext: num(row, "imapUidNext") };
}

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
      // Merge: the mark row also holds `indexed`, which outlives every run's mark.
      const p = submit([...ops, ["upsert", entity(pk, RUN_MARK, { mark: token, at: this.now() }), "Merge"]]);
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
        // The note `indexed` goes with the last rows (Merge: it keeps the run mark): once
        // written, no run reindexes again, for every put since writes its item's index rows
        // with it. Without it, each follow-up of a first sync larger than one run's budget (no
        // cursors yet) rewrote the index rows of every record copied so far.
        const ops: TransactionAction[] = [
          ...records.filter((r) => r.skipped?.code !== "STATE_CORRUPT").flatMap(indexRows(pk)),
          ["upsert", entity(pk, RUN_MARK, { indexed: true }), "Merge"],
        ];
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
        const indexed = mark && bool(mark, "indexed") ? { indexed: true } : {};
        if (!row) return indexed;
        const imap = voicemailImapCursor(row);
        const counts = parseCounts(str(row, "itemCounts"));
        const out: SyncCursors = { imap, deltaLink: str(row, "deltaLink"), ...indexed };
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
   * (contacts only: a calendar change names its record by key) and the run mark "!run".
   *
   * Writes are group-committed (RecordWriter below): the records put while one entity group
   * transaction is in flight go together in the next one, each with its index rows (one
   * partition, atomic: a record is never without its rows,
   * https://learn.microsoft.com/en-us/rest/api/storageservices/performing-entity-group-transactions),
   * the first one with the run mark. A put resolves once its transaction is answered, so a
   * caller that waits for it (a pending record before a Graph create) still has it durable
   * first, while the parallel actions of a run share one state request instead of three each
   * (the 5,000-contact first sync lost its lease at one upsert per record, index row and mark).
   *
   * A port that has read every record (loadItems: a full or first run) does not need index
   * rows to find them: it writes them once, in transactions of 100, just before the cursors.
   * A run that stops before that leaves its mark unsettled, so the next run is a full one
   * (countsStale) and writes them again (reindex). Index rows are not deleted in the run's
   * path (a stale one is recognised by the record not holding that UID or id). The cursors
   * name the mark they settle; `countsStale` on load says a run stopped midway.
   */
  recordState<T extends { syncKey: string }, C extends object>(linkId: string, kind: "contacts" | "calendar" | "mail", options: { beforeWrite?: () => void } = {}): RecordStatePort<T, C> {
    const pk = keyOf(`${linkId}|${kind}`);
    const ids = { mailboxId: linkId };
    const indexed = kind === "contacts";
    let markRead: string | undefined;
    const records = () => this.tables.client("records");
    // Checked before each Table write request, not only when a port method is called: a put
    // waits in the group commit, and saveCursors sends a full run's index rows (a hundred
    // transactions for 5,000 contacts) before its cursors; a run abandoned at its deadline
    // (its lease released) went on sending them and then wrote its cursors.
    const check = options.beforeWrite ?? (() => undefined);
    const writer = new RecordWriter(pk, ids, records, this.now, check);
    /** Set once this port read every record: index rows wait for the cursors. */
    let loadedAll = false;
    const deferred = new Map<string, Entity>();
    const indexOf = (r: T) => (indexed && !isCorrupt(r) ? indexRows(pk)(r as unknown as ItemRecord).map((op) => op[1] as Entity) : []);
    const put = (item: T) => {
      const data = JSON.stringify(item);
      if (data.length > MAX_STRING) throw new ConnectorError("INTERNAL", "item record longer than a table property holds", ids);
      const index = indexOf(item);
      if (loadedAll) { for (const e of index) deferred.set(e.rowKey, e); return writer.put(keyOf(item.syncKey), entity(pk, keyOf(item.syncKey), { data }), []); }
      return writer.put(keyOf(item.syncKey), entity(pk, keyOf(item.syncKey), { data }), index);
    };
    return {
      loadItems: async () => {
        const c = await records();
        const out: T[] = [];
        await guard(async () => { for await (const row of listRows(c, `PartitionKey eq '${pk}' and RowKey ge '${FIRST_ITEM_KEY}'`)) out.push(toRecord<T>(row)); }, ids);
        if (indexed && out.some(isCorrupt)) await attachIndex(c, pk, out);
        loadedAll = true;
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
        const rows = items.flatMap(indexOf);
        if (loadedAll) { for (const e of rows) deferred.set(e.rowKey, e); return; }
        await writer.writeRows(rows);
      },
      putItem: (item) => put(item),
      putItems: async (list) => { await Promise.all(list.map(put)); },
      deleteItem: async (syncKey) => {
        for (const [rk, e] of deferred) if (e.syncKey === syncKey) deferred.delete(rk);
        await writer.delete(keyOf(syncKey));
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
        await writer.settled();
        // The index rows a full run kept back, before the cursors that say they are there.
        await writer.writeRows([...deferred.values()]);
        deferred.clear();
        const c = await this.tables.client("cursors");
        check();
        await guard(() => c.upsertEntity(entity(keyOf(linkId), kind, { data, settles: writer.marked ? writer.token : markRead, savedAt: new Date(this.now()).toISOString() }), "Replace"), ids);
      },
    };
  }

  /**
   * Which of these Exchange ids a kind's records hold (the records' id index rows, one point
   * read each): the webhook's test for a Graph "created" of a contact the connector itself
   * created or already synced (src/app/webhooks.ts). An id whose index row is missing is not known.
   */
  async knownGraphIds(linkId: string, kind: "contacts" | "calendar" | "mail", ids: readonly string[]): Promise<Set<string>> {
    const c = await this.tables.client("records");
    const pk = keyOf(`${linkId}|${kind}`);
    const out = new Set<string>();
    await mapLimit([...new Set(ids)], POINT_READS_IN_FLIGHT, async (id) => { if (await getOrUndefined(c, pk, graphKey(id))) out.add(id); });
    return out;
  }

  /**
   * What the last run of each store-watching kind (voicemail, contacts, e-mail on the phone)
   * saw of its store folder: the IMAP part of its cursors. One partition read of the cursors
   * table (the rows of every kind of the link); the poll's store check compares them with the
   * folders' STATUS (src/app/storePoll.ts). A row that cannot be read counts as no cursor.
   */
  async storeCursors(linkId: string): Promise<Partial<Record<"voicemail" | "contacts" | "mail", ImapCursor>>> {
    const c = await this.tables.client("cursors");
    const out: Partial<Record<"voicemail" | "contacts" | "mail", ImapCursor>> = {};
    await guard(async () => {
      for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${keyOf(linkId)}'` } })) {
        const r = row as Row;
        if (r.rowKey === "voicemail") {
          const imap = voicemailImapCursor(r);
          if (imap) out.voicemail = imap;
        } else if (r.rowKey === "contacts" || r.rowKey === "mail") {
          try {
            const imap = (JSON.parse(String(r.data)) as { imap?: ImapCursor }).imap;
            if (imap && typeof imap.uidValidity === "number") out[r.rowKey] = imap;
          } catch { /* unreadable cursors: the run makes a full one */ }
        }
      }
    });
    return out;
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
    trashFolder: i.storeTrash?.folder, trashUid: i.storeTrash?.uid, trashUidValidity: i.storeTrash?.uidValidity,
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
  optional("trashFolder", "string"); optional("trashUid", "number"); optional("trashUidValidity", "number");
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
    storeTrash: str(row, "trashFolder") && num(row, "trashUid") ? { folder: str(row, "trashFolder")!, uid: num(row, "trashUid")!, uidValidity: num(row, "trashUidValidity") } : undefined,
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

/** An entity group transaction holds at most 100 operations and 4 MiB (the link above); kept under both. */
const MAX_OPS = 100;
const MAX_BYTES = 3 * 1024 * 1024;
/** How long puts that arrive while the port is busy wait for more to join their transaction. */
const GATHER_MS = 20;
/** UTF-8 bytes of an operation's entity at most (3 per UTF-16 unit), with room for the batch's framing. */
const bytesOf = (e: Entity) => 3 * JSON.stringify(e).length + 512;

interface Unit { record: Entity; index: Entity[]; done: Array<{ resolve(): void; reject(e: unknown): void }> }

/**
 * Group commit for one port's record writes. A put joins the next entity group transaction:
 * while one is in flight the others gather, so N parallel actions cost about one state request
 * per round instead of N. Within a transaction a row appears once (Table storage refuses a
 * batch naming one entity twice): a later put of a record replaces the earlier one not yet
 * sent, and an index row goes with the latest record naming it. The first transaction carries
 * the run mark. Transactions are sent one at a time, in the order of the puts.
 */
class RecordWriter {
  readonly token = crypto.randomUUID();
  marked = false;
  private queue = new Map<string, Unit>();
  private flushing: Promise<void> | undefined;
  private readonly indexSent = new Set<string>();

  constructor(private readonly pk: string, private readonly ids: { mailboxId: string }, private readonly client: () => Promise<TableClient>, private readonly now: () => number, private readonly check: () => void) {}

  put(rowKey: string, record: Entity, index: Entity[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const prev = this.queue.get(rowKey);
      this.queue.delete(rowKey); // to the end: its rows go after the puts before it
      // A record written twice in a run names the same UID: its index row is sent once.
      const fresh = index.filter((e) => !this.indexSent.has(`${e.rowKey}|${String(e.syncKey)}`));
      this.queue.set(rowKey, { record, index: fresh, done: [...(prev?.done ?? []), { resolve, reject }] });
      this.kick();
    });
  }

  /** Removes a record: any put of it not yet sent is dropped (its waiters settle with the delete). */
  async delete(rowKey: string): Promise<void> {
    const prev = this.queue.get(rowKey);
    this.queue.delete(rowKey);
    try {
      await this.settled();
      if (!this.marked) await this.send([["upsert", this.markEntity(), "Replace"]]);
      this.marked = true;
      const c = await this.client();
      this.check();
      try {
        await guard(() => c.deleteEntity(this.pk, rowKey), this.ids);
      } catch (e) {
        if (!isConnectorError(e, "NOT_FOUND")) throw e;
      }
      prev?.done.forEach((d) => d.resolve());
    } catch (e) {
      prev?.done.forEach((d) => d.reject(e));
      throw e;
    }
  }

  /** Rows outside any record (index rows a full run kept back, or a reindex), 100 per transaction. */
  async writeRows(rows: Entity[]): Promise<void> {
    await this.settled();
    const unique = [...new Map(rows.map((e) => [e.rowKey, e])).values()];
    for (const batch of packRows(unique)) await this.send(batch.map((e) => ["upsert", e, "Replace"] as TransactionAction));
  }

  /** Resolves once every put so far has been answered (failures are the puts' own). */
  async settled(): Promise<void> {
    while (this.flushing) await this.flushing.catch(() => undefined);
  }

  private markEntity(): Entity {
    return entity(this.pk, RUN_MARK, { mark: this.token, at: this.now() });
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = this.drain().finally(() => {
      this.flushing = undefined;
      if (this.queue.size) this.kick(); // a put that came while the last round ended
    });
  }

  private async drain(): Promise<void> {
    let busy = false;
    while (this.queue.size) {
      // Puts that came while a transaction was on the wire: more are on their way (the run's
      // actions are in flight), so they wait a moment for company. A put in a quiet moment goes
      // at once. Measured with bench/people.bench.ts (5,000 contacts each way, Azurite): Table
      // writes per contact into Exchange 1.53 without the wait, 0.71-0.75 at 10 ms, 0.36 at
      // 20 ms; onto the store 1.33, 0.92-1.05, 0.88. Throughput moved within its noise.
      if (busy) await new Promise((r) => setTimeout(r, GATHER_MS));
      busy = true;
      const units = [...this.queue.values()];
      this.queue = new Map();
      for (const batch of this.pack(units)) {
        try {
          await this.send(batch.ops);
          if (batch.mark) this.marked = true;
          for (const u of batch.units) { for (const e of u.index) this.indexSent.add(`${e.rowKey}|${String(e.syncKey)}`); u.done.forEach((d) => d.resolve()); }
        } catch (e) {
          batch.units.forEach((u) => u.done.forEach((d) => d.reject(e)));
        }
      }
    }
  }

  /** Whole units (a record and its index rows) into transactions under the limits; a row once per transaction, the latest. */
  private pack(units: Unit[]): Array<{ ops: TransactionAction[]; units: Unit[]; mark: boolean }> {
    const out: Array<{ ops: TransactionAction[]; units: Unit[]; mark: boolean }> = [];
    let rows = new Map<string, Entity>();
    let members: Unit[] = [];
    let bytes = 0;
    let mark = false;
    const close = () => { if (members.length) out.push({ ops: [...rows.values()].map((e) => ["upsert", e, "Replace"] as TransactionAction), units: members, mark }); rows = new Map(); members = []; bytes = 0; mark = false; };
    for (const u of units) {
      const size = [u.record, ...u.index].reduce((n, e) => n + bytesOf(e), 0);
      if (members.length && (rows.size + 1 + u.index.length + (this.marked || out.length ? 0 : 1) > MAX_OPS || bytes + size > MAX_BYTES)) close();
      if (!this.marked && !out.length && !mark) { const m = this.markEntity(); rows.set(m.rowKey, m); mark = true; }
      for (const e of u.index) { rows.delete(e.rowKey); rows.set(e.rowKey, e); }
      rows.set(u.record.rowKey, u.record);
      members.push(u);
      bytes += size;
    }
    close();
    return out;
  }

  private async send(ops: TransactionAction[]): Promise<void> {
    const c = await this.client();
    this.check();
    await guard(() => c.submitTransaction(ops), this.ids);
  }
}

/** Rows into groups of at most MAX_OPS and MAX_BYTES. */
function packRows(rows: Entity[]): Entity[][] {
  const out: Entity[][] = [];
  let cur: Entity[] = [];
  let bytes = 0;
  for (const e of rows) {
    const size = bytesOf(e);
    if (cur.length && (cur.length >= MAX_OPS || bytes + size > MAX_BYTES)) { out.push(cur); cur = []; bytes = 0; }
    cur.push(e);
    bytes += size;
  }
  if (cur.length) out.push(cur);
  return out;
}
