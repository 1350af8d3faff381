/**
 * Graph subscriptions and the lifetime each tenant accepts:
 *
 *   subs      PK "sub"     RK subscriptionId           Graph subscriptions
 *             PK "lifetime" RK tenantId               subscription lifetime a tenant accepts
 */
import { isConnectorError } from "../errors.js";
import { linkBucket } from "./links.js";
import { StateRows } from "./rows.js";
import { entity, getOrUndefined, guard, keyOf, num, str, type Row } from "./tables.js";

export interface SubscriptionRecord {
  subscriptionId: string;
  linkId: string;
  tenantId: string;
  resource: string;
  expiresAt: string;
  status: "active" | "failed";
  /** The clientState nonce this subscription was created with (absent: made before nonces). */
  nonce?: string;
  createdAt?: string;
}

export class SubscriptionRows extends StateRows {
  // ---- subscriptions -------------------------------------------------------------------

  async putSubscription(s: SubscriptionRecord): Promise<void> {
    const c = await this.tables.client("subs");
    // The link's bucket: one shard of the renewals' fan-out lists its links' subscriptions only.
    await guard(() => c.upsertEntity(entity("sub", keyOf(s.subscriptionId), { ...s, bucket: linkBucket(s.linkId) }), "Replace"));
  }

  async getSubscription(subscriptionId: string): Promise<SubscriptionRecord | undefined> {
    const row = await getOrUndefined(await this.tables.client("subs"), "sub", keyOf(subscriptionId));
    return row && toSub(row);
  }

  async listSubscriptions(filter: { linkId?: string; expiringBefore?: Date; buckets?: [number, number] } = {}): Promise<SubscriptionRecord[]> {
    const c = await this.tables.client("subs");
    const clauses = ["PartitionKey eq 'sub'"];
    if (filter.buckets) clauses.push(`bucket ge ${filter.buckets[0]} and bucket lt ${filter.buckets[1]}`);
    if (filter.linkId) clauses.push(`linkId eq '${filter.linkId.replace(/'/g, "''")}'`);
    // ISO-8601 UTC strings compare in time order.
    if (filter.expiringBefore) clauses.push(`expiresAt lt '${filter.expiringBefore.toISOString()}'`);
    const out: SubscriptionRecord[] = [];
    await guard(async () => { for await (const row of c.listEntities<Record<string, unknown>>({ queryOptions: { filter: clauses.join(" and ") } })) out.push(toSub(row as Row)); });
    return out;
  }

  async deleteSubscription(subscriptionId: string): Promise<void> {
    const c = await this.tables.client("subs");
    await guard(() => c.deleteEntity("sub", keyOf(subscriptionId))).catch((e) => { if (!isConnectorError(e, "NOT_FOUND")) throw e; });
  }

  /** The subscription lifetime (minutes) a tenant's Graph accepted last, if it ever refused more. */
  async getSubscriptionMinutes(tenantId: string): Promise<number | undefined> {
    const row = await getOrUndefined(await this.tables.client("subs"), "lifetime", keyOf(tenantId));
    return row ? num(row, "minutes") : undefined;
  }

  async putSubscriptionMinutes(tenantId: string, minutes: number): Promise<void> {
    const c = await this.tables.client("subs");
    await guard(() => c.upsertEntity(entity("lifetime", keyOf(tenantId), { tenantId, minutes }), "Replace"));
  }
}

function toSub(row: Row): SubscriptionRecord {
  return {
    subscriptionId: str(row, "subscriptionId")!, linkId: str(row, "linkId")!, tenantId: str(row, "tenantId")!, resource: str(row, "resource")!,
    expiresAt: str(row, "expiresAt")!, status: str(row, "status") === "failed" ? "failed" : "active",
    nonce: str(row, "nonce"), createdAt: str(row, "createdAt"),
  };
}
