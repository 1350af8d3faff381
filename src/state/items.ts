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
import type { ImapCursor, ItemRecord, SyncCursors, VoicemailStatePort } from "../sync/ports.js";
import { StateRows } from "./rows.js";
import { bool, entity, getOrUndefined, guard, keyOf, num, str, type Row } from "./tables.js";

/** Largest string a Table property holds is 64 KiB (32K UTF-16 characters). */
const MAX_STRING = 32_000;

export interface RecordStatePort<T, C> {
  loadItems(): Promise<T[]>;
  putItem(item: T): Promise<void>;
  deleteItem(syncKey: string): Promise<void>;
  loadCursors(): Promise<C | undefined>;
  saveCursors(cursors: C): Promise<void>;
}

export interface ConflictRecord {
  syncKey: string;
  at: string;
  /** "contact": an edit/edit conflict; "voicemail-match": adoption found no single partner (copied, nothing merged). */
  kind: "contact" | "voicemail-match" | "contact-match";
  /** The side whose version lost (and is kept here); "none" when nothing was overwritten. */
  loser: "imap" | "graph" | "none";
  /** The losing version, as a vCard; for a match, the candidates and the reason as JSON. */
  content: string;
  /** A display name for the admin (no other content). */
  summary?: string;
}

export class ItemRows extends StateRows {
  // ---- per-link voicemail state (items + cursors) -------------------------------------

  /** The sync core's view of one link's state. The caller holds the link's lease. */
  voicemailState(linkId: string): VoicemailStatePort {
    const pk = keyOf(linkId);
    const ids = { mailboxId: linkId };
    return {
      loadItems: async () => {
        const c = await this.tables.client("items");
        const out: ItemRecord[] = [];
        await guard(async () => { for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${pk}'` } })) out.push(toItem(row as Row)); }, ids);
        return out;
      },
      putItem: async (item) => {
        const c = await this.tables.client("items");
        await guard(() => c.upsertEntity(itemEntity(pk, item), "Replace"), ids);
      },
      deleteItem: async (syncKey) => {
        const c = await this.tables.client("items");
        try {
          await guard(() => c.deleteEntity(pk, keyOf(syncKey)), ids);
        } catch (e) {
          if (!isConnectorError(e, "NOT_FOUND")) throw e;
        }
      },
      loadCursors: async () => {
        const row = await getOrUndefined(await this.tables.client("cursors"), pk, "voicemail");
        if (!row) return {};
        const uidValidity = num(row, "imapUidValidity");
        const imap: ImapCursor | undefined = uidValidity === undefined ? undefined : { uidValidity, highestModseq: str(row, "imapHighestModseq"), uidNext: num(row, "imapUidNext") };
        return { imap, deltaLink: str(row, "deltaLink") } satisfies SyncCursors;
      },
      saveCursors: async (cursors) => {
        if ((cursors.deltaLink?.length ?? 0) > MAX_STRING) throw new ConnectorError("INTERNAL", "deltaLink longer than a table property holds", ids);
        const c = await this.tables.client("cursors");
        await guard(() => c.upsertEntity(entity(pk, "voicemail", {
          imapUidValidity: cursors.imap?.uidValidity, imapHighestModseq: cursors.imap?.highestModseq, imapUidNext: cursors.imap?.uidNext,
          deltaLink: cursors.deltaLink, savedAt: new Date(this.now()).toISOString(),
        }), "Replace"), ids);
      },
    };
  }

  // ---- per-link contacts / calendar state -----------------------------------------------

  /**
   * Item records of one kind for one link, as JSON (the records are small and their shape
   * belongs to the sync core of that kind), with the kind's cursor row. The caller holds the
   * link's lease for that kind.
   */
  recordState<T extends { syncKey: string }, C extends object>(linkId: string, kind: "contacts" | "calendar"): RecordStatePort<T, C> {
    const pk = keyOf(`${linkId}|${kind}`);
    const ids = { mailboxId: linkId };
    return {
      loadItems: async () => {
        const c = await this.tables.client("records");
        const out: T[] = [];
        await guard(async () => { for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${pk}'` } })) out.push(JSON.parse(String(row.data)) as T); }, ids);
        return out;
      },
      putItem: async (item) => {
        const data = JSON.stringify(item);
        if (data.length > MAX_STRING) throw new ConnectorError("INTERNAL", "item record longer than a table property holds", ids);
        const c = await this.tables.client("records");
        await guard(() => c.upsertEntity(entity(pk, keyOf(item.syncKey), { data }), "Replace"), ids);
      },
      deleteItem: async (syncKey) => {
        const c = await this.tables.client("records");
        await guard(() => c.deleteEntity(pk, keyOf(syncKey)), ids).catch((e) => { if (!isConnectorError(e, "NOT_FOUND")) throw e; });
      },
      loadCursors: async () => {
        const row = await getOrUndefined(await this.tables.client("cursors"), keyOf(linkId), kind);
        return row?.data ? (JSON.parse(String(row.data)) as C) : undefined;
      },
      saveCursors: async (cursors) => {
        const data = JSON.stringify(cursors);
        if (data.length > MAX_STRING) throw new ConnectorError("INTERNAL", "cursors longer than a table property holds", ids);
        const c = await this.tables.client("cursors");
        await guard(() => c.upsertEntity(entity(keyOf(linkId), kind, { data, savedAt: new Date(this.now()).toISOString() }), "Replace"), ids);
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

function toItem(row: Row): ItemRecord {
  const code = str(row, "skippedCode");
  return {
    syncKey: str(row, "syncKey")!, imapUid: num(row, "imapUid"), graphId: str(row, "graphId"), agreedSeen: bool(row, "agreedSeen"),
    pendingCreate: bool(row, "pendingCreate"), skipped: code ? { code, message: str(row, "skippedMessage") ?? "" } : undefined,
    receivedAt: str(row, "receivedAt"), graphElsewhere: bool(row, "graphElsewhere") || undefined, detached: str(row, "detached") as ItemRecord["detached"],
  };
}
