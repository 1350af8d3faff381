/**
 * `umconnect subscriptions --audit`: Graph's subscriptions of this app, per tenant and mailbox,
 * compared with the state store. Real Graph accepts a second subscription for the same resource
 * and notification URL, and a DELETE can fail, so orphans (known to Graph only: renewed by
 * nobody, notifying until they expire) and duplicates (two for one link and kind) can exist;
 * the audit removes both, and forgets records Graph no longer has (the upkeep makes new ones).
 * Only subscriptions that notify this deployment (UMC_PUBLIC_BASE_URL) are touched.
 * GET /subscriptions lists the app's subscriptions in the tenant (https://learn.microsoft.com/en-us/graph/api/subscription-list).
 */
import type { Deps } from "../app/deps.js";
import { kindOfResource } from "../app/subscriptions.js";
import { enqueueSync } from "../app/syncQueue.js";
import { isConnectorError } from "../errors.js";
import type { SubscriptionRecord } from "../state/stateStore.js";

export interface AuditedSubscription {
  tenantId: string;
  subscriptionId: string;
  resource: string;
  /** The mailbox (Graph user id) the resource belongs to. */
  mailbox: string;
  expiresAt: string;
  linkId?: string;
  verdict: "kept" | "orphan" | "duplicate" | "missing-on-graph";
  removed: boolean;
}

interface GraphSubscription { id: string; resource: string; expirationDateTime: string; notificationUrl: string; clientState?: string | null }

export async function auditSubscriptions(deps: Deps, options: { remove: boolean; tenantId?: string }): Promise<AuditedSubscription[]> {
  const base = deps.config.publicBaseUrl?.replace(/\/$/, "");
  const records = await deps.state.listSubscriptions({});
  const out: AuditedSubscription[] = [];
  const tenants = (await deps.state.listTenants()).filter((t) => t.status === "active" && (!options.tenantId || t.tenantId === options.tenantId));
  for (const t of tenants) {
    const graph = deps.graph(t.tenantId);
    const onGraph: GraphSubscription[] = [];
    for (let url: string | undefined = "/subscriptions"; url;) {
      const page: { value: GraphSubscription[]; "@odata.nextLink"?: string } = await graph.request({ method: "GET", url });
      onGraph.push(...page.value);
      url = page["@odata.nextLink"];
    }
    const mine = onGraph.filter((s) => !base || s.notificationUrl.startsWith(`${base}/`));
    const known = new Map(records.filter((r) => r.tenantId === t.tenantId).map((r) => [r.subscriptionId, r]));
    // Per link and kind the newest known one is kept; older known ones are duplicates.
    const newest = new Map<string, SubscriptionRecord>();
    for (const r of known.values()) {
      const key = `${r.linkId}|${kindOfResource(r.resource)}`;
      const n = newest.get(key);
      if (!n || r.expiresAt > n.expiresAt) newest.set(key, r);
    }
    for (const s of mine) {
      const r = known.get(s.id);
      const verdict = !r ? "orphan" : newest.get(`${r.linkId}|${kindOfResource(r.resource)}`) === r ? "kept" : "duplicate";
      let removed = false;
      if (verdict !== "kept" && options.remove) {
        try {
          await graph.request({ method: "DELETE", url: `/subscriptions/${s.id}` });
        } catch (e) {
          if (!isConnectorError(e, "GRAPH_NOT_FOUND")) throw e;
        }
        if (r) await deps.state.deleteSubscription(r.subscriptionId);
        removed = true;
      }
      out.push({ tenantId: t.tenantId, subscriptionId: s.id, resource: s.resource, mailbox: mailboxOf(s.resource), expiresAt: s.expirationDateTime, ...(r ? { linkId: r.linkId } : {}), verdict, removed });
    }
    const ids = new Set(onGraph.map((s) => s.id));
    for (const r of known.values()) {
      if (ids.has(r.subscriptionId)) continue;
      let removed = false;
      if (options.remove) {
        await deps.state.deleteSubscription(r.subscriptionId);
        await enqueueSync(deps.syncQueue, { linkId: r.linkId, kind: "subscriptions", reason: "admin", at: Date.now() });
        removed = true;
      }
      out.push({ tenantId: t.tenantId, subscriptionId: r.subscriptionId, resource: r.resource, mailbox: mailboxOf(r.resource), expiresAt: r.expiresAt, linkId: r.linkId, verdict: "missing-on-graph", removed });
    }
  }
  return out.sort((a, b) => a.tenantId.localeCompare(b.tenantId) || a.mailbox.localeCompare(b.mailbox) || a.resource.localeCompare(b.resource));
}

const mailboxOf = (resource: string) => /^\/?users\/([^/]+)/i.exec(resource)?.[1] ?? "-";

export function formatAudit(rows: AuditedSubscription[]): string {
  if (!rows.length) return "(no subscriptions)";
  return rows.map((r) => `${r.tenantId}  ${r.mailbox}  ${r.subscriptionId}  ${r.resource}  until ${r.expiresAt}  ${r.linkId ?? "-"}  ${r.verdict}${r.removed ? " (removed)" : ""}`).join("\n");
}
