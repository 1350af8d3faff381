/**
 * A small, bounded history of each link's runs for the status page (table "runs", one row per
 * link): the last RUNS_KEPT runs that did something or failed (time, kind, reason, outcome,
 * actions, duration, trigger lag) and per-hour counters for the last HOURS_KEPT hours (runs,
 * failures, the worst trigger lag). Runs that found nothing to do are not written: the fast
 * read check runs every few seconds, and a table write each time would cost more than the
 * picture is worth. Concurrent runs of one link (different kinds) update the row by ETag and
 * retry once; a history entry lost to a third race is acceptable, the run itself is not touched.
 */
import { getOrUndefined, guard, keyOf, rewriteRow, str, type Row } from "./tables.js";
import type { StateStore } from "./stateStore.js";

export const RUNS_KEPT = 20;
export const HOURS_KEPT = 25;

export interface RunRecord {
  at: string;
  kind: string;
  reason: string;
  outcome: "ran" | "failed";
  /** Writes by action (copied, setImapSeen, ...), for runs that did something. */
  actions?: Record<string, number>;
  ms: number;
  /** Trigger (notification, push, timer) to run end. */
  lagMs?: number;
  error?: string;
}

/** Runs that started in one UTC hour (`hour`: "2026-11-30T17"). */
export interface HourBucket { hour: string; runs: number; failed: number; lagMaxMs: number }

export interface LinkHistory { linkId: string; runs: RunRecord[]; hours: HourBucket[] }

const PK = "runs";

export class RunHistory {
  constructor(private readonly state: StateStore) {}

  private table() { return this.state.tableClients.client("runs"); }

  async get(linkId: string): Promise<LinkHistory | undefined> {
    const row = await getOrUndefined(await this.table(), PK, keyOf(linkId));
    return row ? toHistory(row) : undefined;
  }

  /** Every link's hourly figures (not the runs: a fifth of the row), for the status page's charts. */
  async listHours(): Promise<Array<Pick<LinkHistory, "linkId" | "hours">>> {
    const c = await this.table();
    const out: Array<Pick<LinkHistory, "linkId" | "hours">> = [];
    const filter = `PartitionKey eq '${PK}'`;
    await guard(async () => { for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter, select: ["linkId", "hours"] } })) out.push(toHistory(row as Row)); });
    return out;
  }

  async record(linkId: string, run: RunRecord): Promise<void> {
    const c = await this.table();
    await rewriteRow(c, PK, keyOf(linkId), (row) => {
      const h = row ? toHistory(row) : { linkId, runs: [], hours: [] };
      const hour = run.at.slice(0, 13);
      const bucket = h.hours.find((b) => b.hour === hour) ?? { hour, runs: 0, failed: 0, lagMaxMs: 0 };
      const next = { ...bucket, runs: bucket.runs + 1, failed: bucket.failed + (run.outcome === "failed" ? 1 : 0), lagMaxMs: Math.max(bucket.lagMaxMs, run.lagMs ?? 0) };
      const hours = [...h.hours.filter((b) => b.hour !== hour), next].sort((a, b) => a.hour.localeCompare(b.hour)).slice(-HOURS_KEPT);
      const runs = [run, ...h.runs].slice(0, RUNS_KEPT);
      return { linkId, runs: JSON.stringify(runs), hours: JSON.stringify(hours) };
    }, { attempts: 2 });
  }
}

function toHistory(row: Row): LinkHistory {
  const parse = <T>(name: string): T[] => { try { return JSON.parse(str(row, name) ?? "[]") as T[]; } catch { return []; } };
  return { linkId: str(row, "linkId")!, runs: parse<RunRecord>("runs"), hours: parse<HourBucket>("hours") };
}
