/**
 * Alerts that reach a person: every few minutes (the alerts timer) the status report's alerts
 * are compared with the ones already known. A new alert is POSTed to UMC_ALERT_WEBHOOK_URL
 * ("raised"), one that is still open a day later again ("reminder"), one whose condition
 * cleared as "resolved". A notice that could not be delivered is owed and retried at the next
 * evaluation; nothing is sent twice for one state. The same evaluation feeds the link and
 * alert gauges of the telemetry.
 *
 * The body is JSON (ids, codes, texts; never content). With UMC_ALERT_WEBHOOK_SECRET set it
 * carries X-UMC-Timestamp and X-UMC-Signature: sha256=HMAC(secret, "<timestamp>.<body>"), the
 * scheme of the store notifications.
 */
import crypto from "node:crypto";
import { isConnectorError } from "../errors.js";
import { postJson } from "../security/outbound.js";
import type { Deps } from "../app/deps.js";
import type { AlertRecord } from "../state/stateStore.js";
import { recordStatusSnapshot } from "../telemetry.js";
import { STORE_SIGNATURE_HEADER, STORE_TIMESTAMP_HEADER, signStoreNotification } from "../webhooks/storeNotifications.js";
import { statusReport, type Alert } from "./status.js";

const REMIND_AFTER_MS = 24 * 3600_000;

export type AlertEvent = "raised" | "reminder" | "resolved";

export interface AlertNotice {
  source: "umconnect";
  event: AlertEvent;
  severity: Alert["severity"];
  code: string;
  linkId?: string;
  endpointId?: string;
  tenantId?: string;
  text: string;
  since: string;
  at: string;
}

export interface AlertsOutcome {
  open: number;
  sent: Array<{ event: AlertEvent; key: string }>;
  failed: number;
}

const alertKey = (a: Alert) => `${a.code}|${a.linkId ?? (a.endpointId ? `endpoint:${a.endpointId}` : "-")}`;

export async function evaluateAlerts(deps: Deps, now = Date.now()): Promise<AlertsOutcome> {
  const report = await statusReport(deps, now);
  const linksByState = new Map<string, number>();
  for (const l of report.links) linksByState.set(l.state, (linksByState.get(l.state) ?? 0) + 1);
  const byCode = new Map<string, number>();
  for (const a of report.alerts) byCode.set(a.code, (byCode.get(a.code) ?? 0) + 1);
  recordStatusSnapshot(linksByState, byCode);

  const tenantOf = new Map(report.links.map((l) => [l.linkId, l.tenantId]));
  const current = new Map(report.alerts.map((a) => [alertKey(a), a]));
  const known = new Map((await deps.state.listAlerts()).map((r) => [r.key, r]));
  const iso = new Date(now).toISOString();
  const outcome: AlertsOutcome = { open: current.size, sent: [], failed: 0 };

  const tell = async (record: AlertRecord, event: AlertEvent): Promise<boolean> => {
    const notice: AlertNotice = { source: "umconnect", event, severity: record.severity, code: record.code, ...(record.linkId ? { linkId: record.linkId } : {}), ...(record.endpointId ? { endpointId: record.endpointId } : {}), ...(record.tenantId ? { tenantId: record.tenantId } : {}), text: record.text, since: record.firstSeen, at: iso };
    const ok = await deliver(deps, notice);
    if (ok) outcome.sent.push({ event, key: record.key }); else outcome.failed++;
    return ok;
  };

  for (const [key, a] of current) {
    const before = known.get(key);
    const record: AlertRecord = before && !before.resolvedAt
      ? { ...before, severity: a.severity, text: a.text }
      : { key, code: a.code, severity: a.severity, ...(a.linkId ? { linkId: a.linkId, tenantId: tenantOf.get(a.linkId) } : {}), ...(a.endpointId ? { endpointId: a.endpointId } : {}), text: a.text, firstSeen: iso };
    const due = !record.notifiedAt ? "raised" : now - Date.parse(record.notifiedAt) >= REMIND_AFTER_MS ? "reminder" : undefined;
    if (due && (await tell(record, due))) record.notifiedAt = iso;
    if (due || !before || before.resolvedAt || before.text !== record.text || before.severity !== record.severity) await deps.state.putAlert(record);
  }
  for (const [key, r] of known) {
    if (current.has(key)) continue;
    const record = { ...r, resolvedAt: r.resolvedAt ?? iso };
    // Never told about it: nothing to take back.
    if (!r.notifiedAt || (await tell(record, "resolved"))) await deps.state.deleteAlert(key);
    else if (!r.resolvedAt) await deps.state.putAlert(record);
  }
  return outcome;
}

/** True when the notice was accepted (2xx), or when no webhook is configured (status page only). */
async function deliver(deps: Deps, notice: AlertNotice): Promise<boolean> {
  const { webhookUrl, webhookSecret } = deps.config.alerts;
  if (!webhookUrl) return true;
  const body = JSON.stringify(notice);
  const ts = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = { "content-type": "application/json", "idempotency-key": crypto.createHash("sha256").update(`${notice.code}|${notice.linkId}|${notice.event}|${notice.since}|${notice.event === "reminder" ? notice.at : ""}`).digest("hex").slice(0, 32) };
  if (webhookSecret) { headers[STORE_TIMESTAMP_HEADER] = String(ts); headers[STORE_SIGNATURE_HEADER] = signStoreNotification(webhookSecret, ts, body); }
  try {
    // No redirects, no internal addresses (src/security/outbound.ts).
    const status = await postJson(webhookUrl, headers, body, deps.config.outbound, { what: "alert webhook" });
    if (status >= 200 && status < 300) return true;
    deps.log.warn("alerts.delivery.failed", { code: notice.code, event: notice.event, status, host: new URL(webhookUrl).host });
  } catch (e) {
    deps.log.warn("alerts.delivery.failed", { code: notice.code, event: notice.event, host: new URL(webhookUrl).host, error: isConnectorError(e) ? e.message : (e as Error).name });
  }
  return false;
}
