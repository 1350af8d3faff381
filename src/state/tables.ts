/**
 * Table Storage plumbing shared by the state store: clients per table (created once per
 * process), RestError -> ConnectorError mapping, and ETag helpers.
 * Concurrency: Table Storage answers 412 when If-Match does not hold and 409 when an entity
 * already exists (https://learn.microsoft.com/en-us/rest/api/storageservices/update-entity2,
 * .../insert-entity); both read as STATE_CONFLICT.
 */
import { TableClient, type TableEntity, type TableEntityResult } from "@azure/data-tables";
import type { TokenCredential } from "@azure/core-auth";
import { ConnectorError, isConnectorError } from "../errors.js";
import { withDeadline } from "../timeouts.js";

const TABLE_OPEN_DEADLINE_MS = 10_000;

export interface StorageTarget {
  connectionString?: string;
  tableServiceUri?: string;
  credential?: TokenCredential;
  tablePrefix: string;
}

export type Row = TableEntityResult<Record<string, unknown>>;

export class Tables {
  private clients = new Map<string, Promise<TableClient>>();
  constructor(private readonly target: StorageTarget) {}

  /** The client for one logical table; the table is created on first use only. */
  client(name: string): Promise<TableClient> {
    let p = this.clients.get(name);
    if (!p) {
      p = this.open(`${this.target.tablePrefix}${name}`);
      this.clients.set(name, p);
      p.catch(() => this.clients.delete(name)); // retry creation next time
    }
    return p;
  }

  private async open(table: string): Promise<TableClient> {
    return countOperations(await this.openClient(table));
  }

  private async openClient(table: string): Promise<TableClient> {
    const t = this.target;
    let client: TableClient;
    if (t.connectionString) {
      // http is only ever Azurite; a real account is https.
      const insecure = /TableEndpoint=http:|UseDevelopmentStorage=true/i.test(t.connectionString);
      client = TableClient.fromConnectionString(t.connectionString, table, { allowInsecureConnection: insecure });
    } else if (t.tableServiceUri && t.credential) {
      client = new TableClient(t.tableServiceUri, table, t.credential);
    } else {
      throw new ConnectorError("CONFIG_INVALID", "state store needs a connection string, or a table service URI and a credential");
    }
    // Idempotent: 409 TableAlreadyExists is swallowed by the SDK. With a deadline: a creation
    // that hangs (storage unreachable at a cold start) must not stay cached and hang every
    // later call of this process; it fails, is forgotten, and the next call tries again.
    await withDeadline(guard(() => client.createTable()), TABLE_OPEN_DEADLINE_MS, "STATE_UNAVAILABLE", `opening table ${table}`);
    return client;
  }
}

interface RestLike {
  statusCode?: number;
  code?: string;
  message?: string;
}

/** Runs a Table call and maps its failure to the error vocabulary. */
export async function guard<T>(fn: () => Promise<T>, ids: { mailboxId?: string } = {}): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toStateError(e, ids);
  }
}

export function toStateError(e: unknown, ids: { mailboxId?: string } = {}): ConnectorError {
  if (e instanceof ConnectorError) return e;
  const r = (e ?? {}) as RestLike;
  if (r.statusCode === 412 || r.statusCode === 409) return new ConnectorError("STATE_CONFLICT", "state changed concurrently", { ...ids, cause: e });
  if (r.statusCode === 404) return new ConnectorError("NOT_FOUND", "state entity not found", { ...ids, cause: e });
  if (r.statusCode === undefined || r.statusCode >= 500 || r.statusCode === 408) {
    return new ConnectorError("STATE_UNAVAILABLE", `state store unavailable (${r.code ?? r.statusCode ?? "network"})`, { ...ids, cause: e, transient: true });
  }
  return new ConnectorError("INTERNAL", `state store request failed with HTTP ${r.statusCode}`, { ...ids, cause: e });
}

/** Table operations (billed transactions) of this process by method, for the cost model (`npm run bench -- cost`). */
export const tableOps = new Map<string, number>();
const BILLED = new Set(["getEntity", "createEntity", "upsertEntity", "updateEntity", "deleteEntity", "submitTransaction", "createTable"]);

/** Counts each billed call; a listing counts one per page (in listRows, and for direct listEntities users per call). */
function countOperations(client: TableClient): TableClient {
  return new Proxy(client, {
    get(target, key) {
      const v = Reflect.get(target, key) as unknown;
      if (typeof v !== "function") return v;
      const name = String(key);
      if (BILLED.has(name) || name === "listEntities") return (...args: unknown[]) => { tableOps.set(name, (tableOps.get(name) ?? 0) + 1); return (v as (...a: unknown[]) => unknown).apply(target, args); };
      return (v as (...a: unknown[]) => unknown).bind(target);
    },
  });
}

/**
 * Table reads of this process, for the benchmarks (entities read per run; Table transactions
 * in the cost model): each point read and each page of a listing is one transaction.
 */
export const tableReads = { requests: 0, entities: 0 };

/** Reads one entity; undefined when it does not exist. */
/** `fn` over `xs` with at most `limit` calls in flight (point reads); results in the order of `xs`. */
export async function mapLimit<T, R>(xs: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(xs.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, xs.length) }, async () => {
    for (let i = next++; i < xs.length; i = next++) out[i] = await fn(xs[i]!);
  }));
  return out;
}

export async function getOrUndefined(client: TableClient, pk: string, rk: string): Promise<Row | undefined> {
  try {
    tableReads.requests++;
    const row = await client.getEntity<Record<string, unknown>>(pk, rk);
    tableReads.entities++;
    return row;
  } catch (e) {
    if ((e as RestLike).statusCode === 404) return undefined;
    throw toStateError(e);
  }
}

/**
 * Read-modify-write of one row under optimistic concurrency (the Table service's If-Match):
 * `change` gets the row as read (undefined when there is none) and answers the fields to write,
 * or undefined to leave it. They are written with the read row's etag, or as a new row when
 * there was none. Another writer in between (STATE_CONFLICT; NOT_FOUND for a row deleted since)
 * makes it read again, `attempts` reads at most; after the last, that error is thrown. True
 * when it wrote.
 */
export async function rewriteRow(client: TableClient, pk: string, rk: string, change: (row: Row | undefined) => Record<string, unknown> | undefined, o: { attempts: number; mode?: "Replace" | "Merge"; ids?: { mailboxId?: string } }): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    const row = await getOrUndefined(client, pk, rk);
    const fields = change(row);
    if (!fields) return false;
    try {
      await guard(() => (row ? client.updateEntity(entity(pk, rk, fields), o.mode ?? "Replace", { etag: row.etag }) : client.createEntity(entity(pk, rk, fields))), o.ids);
      return true;
    } catch (e) {
      if (attempt >= o.attempts || !(isConnectorError(e, "STATE_CONFLICT") || isConnectorError(e, "NOT_FOUND"))) throw e;
    }
  }
}

/** Lists the rows a filter selects, one page (up to 1,000 entities) at a time, counted in `tableReads`. */
export async function* listRows(client: TableClient, filter: string, select?: string[]): AsyncGenerator<Row> {
  for await (const page of client.listEntities<Record<string, unknown>>({ queryOptions: { filter, select } }).byPage({ maxPageSize: 1000 })) {
    tableReads.requests++;
    tableReads.entities += page.length;
    for (const row of page) yield row as Row;
  }
}

/** Table keys may not contain / \ # ? or control characters; encode anything outside a safe set. */
export function keyOf(value: string): string {
  return value.replace(/[^A-Za-z0-9._@+=-]/g, (c) => "~" + c.codePointAt(0)!.toString(16).padStart(4, "0"));
}

/** The value keyOf encoded. */
export function unKey(key: string): string {
  return key.replace(/~([0-9a-f]{4})/g, (_, hex: string) => String.fromCodePoint(parseInt(hex, 16)));
}

export function str(row: Row, name: string): string | undefined {
  const v = row[name];
  return typeof v === "string" ? v : undefined;
}
export function num(row: Row, name: string): number | undefined {
  const v = row[name];
  return typeof v === "number" ? v : undefined;
}
export function bool(row: Row, name: string): boolean {
  return row[name] === true;
}

export type Entity = TableEntity<Record<string, unknown>>;

/** Drops undefined values: the SDK would write them as nulls. */
export function entity(pk: string, rk: string, fields: Record<string, unknown>): Entity {
  const out: Entity = { partitionKey: pk, rowKey: rk };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) out[k] = v;
  return out;
}
