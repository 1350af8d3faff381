/**
 * Operator configuration kept in the state store: voice-store endpoints and feature profiles
 * (secrets are only named, never stored here), and the alerts the alerts timer has seen.
 *
 *   config    PK "endpoint" / "profile" RK id         JSON of the endpoint or profile
 *   alerts    PK "alert"   RK key                      raised alerts and their notices
 */
import { isConnectorError } from "../errors.js";
import { StateRows } from "./rows.js";
import { entity, guard, keyOf } from "./tables.js";

/** An alert the alerts timer has seen: when it was raised, told, and (once gone) resolved. */
export interface AlertRecord {
  key: string;
  code: string;
  severity: "warning" | "critical";
  linkId?: string;
  /** Alerts about a voice store as a whole (one per endpoint, not per link). */
  endpointId?: string;
  tenantId?: string;
  text: string;
  firstSeen: string;
  /** When the last notice about it went out; absent while one is owed. */
  notifiedAt?: string;
  /** Set when the condition cleared; the row goes once the "resolved" notice is out. */
  resolvedAt?: string;
}

export class ConfigRows extends StateRows {
  // ---- configuration (endpoints and profiles; secrets are only named) ---------------------

  async listConfig(kind: "endpoint" | "profile"): Promise<unknown[]> {
    const c = await this.tables.client("config");
    const out: unknown[] = [];
    await guard(async () => {
      for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${kind}'` } })) out.push(JSON.parse(String(row.data)));
    });
    return out;
  }

  async putConfig(kind: "endpoint" | "profile", id: string, data: unknown): Promise<void> {
    const c = await this.tables.client("config");
    await guard(() => c.upsertEntity(entity(kind, keyOf(id), { data: JSON.stringify(data), updatedAt: new Date(this.now()).toISOString() }), "Replace"));
  }

  async deleteConfig(kind: "endpoint" | "profile", id: string): Promise<boolean> {
    const c = await this.tables.client("config");
    try {
      await guard(() => c.deleteEntity(kind, keyOf(id)));
      return true;
    } catch (e) {
      if (isConnectorError(e, "NOT_FOUND")) return false;
      throw e;
    }
  }

  // ---- alerts --------------------------------------------------------------------------

  async listAlerts(): Promise<AlertRecord[]> {
    const c = await this.tables.client("alerts");
    const out: AlertRecord[] = [];
    await guard(async () => {
      for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: "PartitionKey eq 'alert'" } })) {
        out.push(JSON.parse(String(row.data)) as AlertRecord);
      }
    });
    return out;
  }

  async putAlert(a: AlertRecord): Promise<void> {
    const c = await this.tables.client("alerts");
    await guard(() => c.upsertEntity(entity("alert", keyOf(a.key), { data: JSON.stringify(a) }), "Replace"));
  }

  async deleteAlert(key: string): Promise<void> {
    const c = await this.tables.client("alerts");
    try {
      await guard(() => c.deleteEntity("alert", keyOf(key)));
    } catch (e) {
      if (!isConnectorError(e, "NOT_FOUND")) throw e;
    }
  }
}
