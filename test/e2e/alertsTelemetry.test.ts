/**
 * Alerts reach a person and the figures reach Azure Monitor: a mass-delete stop raised by a
 * real run is POSTed (signed) to the alert webhook by the alerts timer function, once; a
 * failed delivery is retried; a day later it is repeated; when an administrator allows the
 * deletes it is resolved. The same runs export OpenTelemetry metrics and spans (read here by
 * in-memory readers registered as the global providers, as the Azure Monitor distro would be).
 */
import fs from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import crypto from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { metrics, trace } from "@opentelemetry/api";
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type ResourceMetrics } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { startWorld, type World } from "./world.js";
import { ensureTestCerts } from "../harness/certs.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { functionDefinitions } from "../../functions/registry.js";
import { allowMassDelete } from "../../src/admin/links.js";
import { evaluateAlerts, type AlertNotice } from "../../src/admin/alerts.js";

let w: World;
let receiver: https.Server;
const received: Array<{ notice: AlertNotice; signed: boolean }> = [];
let failNext = 0;
const ALERT_SECRET = "alert-secret-for-the-test-world-0123456789";
const spans = new InMemorySpanExporter();
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000 });

const inbox = (userId: string) => w.sim.outlook(userId).messages("inbox");
const runAlertsTimer = async () => {
  const d = functionDefinitions.find((f) => f.name === "alerts")!;
  expect(d.trigger).toMatchObject({ kind: "timer" });
  await (d.handler as (t: unknown, c: unknown) => Promise<void>)({ isPastDue: false }, {});
};

beforeAll(async () => {
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
  const certs = ensureTestCerts();
  receiver = https.createServer({ key: fs.readFileSync(certs.serverKeyPath), cert: fs.readFileSync(certs.serverCertPath) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      if (failNext > 0) { failNext--; res.writeHead(503).end(); return; }
      const ts = String(req.headers["x-umc-timestamp"]);
      const expected = "sha256=" + crypto.createHmac("sha256", ALERT_SECRET).update(`${ts}.${body}`).digest("hex");
      received.push({ notice: JSON.parse(body) as AlertNotice, signed: req.headers["x-umc-signature"] === expected });
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  const url = `https://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/umconnect`;
  w = await startWorld({ users: ["4970", "4971"], quiet: true, env: { UMC_ALERT_WEBHOOK_URL: url, UMC_ALERT_WEBHOOK_SECRET: ALERT_SECRET } });
}, 60_000);
afterAll(async () => {
  await w?.stop();
  await new Promise((r) => receiver.close(r));
  metrics.disable();
  trace.disable();
});

describe("alerts to a person", () => {
  let linkId = "";
  it("POSTs a new alert once, signed, through the alerts timer function", async () => {
    let userId = "";
    ({ linkId, userId } = await w.link("4970", "alerted@contoso.test"));
    for (let i = 0; i < 4; i++) await w.dc.lda("4970", avayaVoiceMessage({ id: `al-${i}` }));
    await expect.poll(() => inbox(userId).length, { timeout: 10_000 }).toBe(4);
    await w.queueDrained(); // no run in flight: the run that refuses starts after the expunge (its push, or the poll)
    await w.dc.doveadm("expunge", "-u", "4970", "mailbox", "INBOX", "all");
    await expect.poll(async () => (await w.deps.state.getLink(linkId))?.lastError?.code, { timeout: 10_000 }).toBe("MASS_DELETE_REFUSED");
    await runAlertsTimer();
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ signed: true, notice: { source: "umconnect", event: "raised", code: "MASS_DELETE_REFUSED", linkId, severity: "critical" } });
    await runAlertsTimer();
    expect(received).toHaveLength(1); // told once
  });

  it("retries a notice the receiver did not take, and reminds a day later", async () => {
    const { linkId: other } = await w.link("4971", "other@contoso.test");
    await w.deps.state.modifyLink(other, (l) => ({ ...l, failureStreak: 3, lastError: { code: "IMAP_UNAVAILABLE", message: "voice-1 unavailable: ECONNREFUSED", at: new Date().toISOString() } }));
    failNext = 1;
    const first = await evaluateAlerts(w.deps);
    expect(first.failed).toBeGreaterThanOrEqual(1);
    const second = await evaluateAlerts(w.deps);
    expect(second.failed).toBe(0);
    expect(received.filter((r) => r.notice.linkId === other && r.notice.code === "KEEPS_FAILING")).toHaveLength(1);
    const later = await evaluateAlerts(w.deps, Date.now() + 25 * 3600_000);
    expect(later.sent.filter((s) => s.event === "reminder").length).toBeGreaterThanOrEqual(2);
    await w.deps.state.modifyLink(other, (l) => ({ ...l, failureStreak: 0, lastError: undefined }));
  });

  it("sends 'resolved' when the condition clears (the administrator allowed the deletes)", async () => {
    await allowMassDelete(w.deps, linkId, "voicemail");
    await expect.poll(async () => (await w.deps.state.getLink(linkId))?.lastError, { timeout: 15_000 }).toBeUndefined();
    await runAlertsTimer();
    expect(received.map((r) => `${r.notice.event} ${r.notice.code}`)).toContain("resolved MASS_DELETE_REFUSED");
    expect(await w.deps.state.listAlerts()).toEqual([]);
    for (const r of received) expect(JSON.stringify(r.notice)).not.toMatch(/Voice message from|Ann Lee/);
  });
});

describe("telemetry", () => {
  const find = (rm: ResourceMetrics[], name: string) => rm.flatMap((r) => r.scopeMetrics).flatMap((s) => s.metrics).filter((m) => m.descriptor.name === name).flatMap((m) => m.dataPoints as Array<{ attributes: Record<string, unknown>; value: unknown }>);

  it("exports runs, writes, lag, errors and the alert gauges as OpenTelemetry metrics", async () => {
    await reader.forceFlush();
    const rm = metricExporter.getMetrics();
    const runs = find(rm, "umconnect.sync.runs");
    expect(runs.some((p) => p.attributes["umc.kind"] === "voicemail" && p.attributes["umc.outcome"] === "ran" && Number(p.value) > 0)).toBe(true);
    const writes = find(rm, "umconnect.sync.writes");
    expect(writes.filter((p) => p.attributes["umc.kind"] === "voicemail").reduce((n, p) => n + Number(p.value), 0)).toBeGreaterThanOrEqual(4);
    expect(find(rm, "umconnect.sync.lag").length).toBeGreaterThan(0);
    expect(find(rm, "umconnect.sync.duration").length).toBeGreaterThan(0);
    expect(find(rm, "umconnect.sync.errors").some((p) => p.attributes["umc.error_code"] === "MASS_DELETE_REFUSED")).toBe(true);
    expect(find(rm, "umconnect.links").some((p) => p.attributes["umc.link_state"] === "enabled" && Number(p.value) === 2)).toBe(true);
    // Cleared by now: the series is still there, at zero.
    expect(find(rm, "umconnect.alerts.open").find((p) => p.attributes["umc.alert_code"] === "MASS_DELETE_REFUSED")?.value).toBe(0);
  });

  it("traces each run as a span with ids and outcome, and no content", () => {
    const all = spans.getFinishedSpans();
    const runs = all.filter((s) => s.name === "sync voicemail");
    expect(runs.length).toBeGreaterThan(0);
    expect(runs.some((s) => s.attributes["umc.outcome"] === "ran" && s.attributes["umc.link_id"] === "L-4970")).toBe(true);
    expect(runs.some((s) => s.attributes["umc.error_code"] === "MASS_DELETE_REFUSED" && s.status.code === 2)).toBe(true);
    expect(JSON.stringify(all.map((s) => s.attributes))).not.toMatch(/Voice message from|Ann Lee|UklGR/);
  });
});
