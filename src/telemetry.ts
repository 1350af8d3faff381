/**
 * Metrics and traces, through the OpenTelemetry API only: without a registered provider every
 * call is a no-op. In Azure, functions/index.ts starts the Azure Monitor distro
 * (startAzureMonitor below), which exports to Application Insights with the managed identity
 * (the component has local auth off). Tests register in-memory readers and exporters.
 *
 * What is exported mirrors the status page: runs per kind and outcome with their duration and
 * trigger-to-done lag, the writes each run made, errors by code, throttling and outages seen,
 * MWI drift corrected, and (from the alerts timer) links by state and open alerts by code.
 * Attributes carry ids and codes, never content (DESIGN.md section 5).
 */
import { metrics, trace, SpanStatusCode, type Attributes, type Counter, type Histogram, type MeterProvider, type Span } from "@opentelemetry/api";
import { isConnectorError } from "./errors.js";
import type { Config } from "./config.js";

export const INSTRUMENTATION_SCOPE = "umconnect";

interface Instruments {
  runs: Counter;
  duration: Histogram;
  lag: Histogram;
  writes: Counter;
  errors: Counter;
  deferred: Counter;
  readDrift: Counter;
}

// The metrics API has no proxy provider: instruments made before a provider is registered
// stay no-ops. So they are made per provider, on first use.
let made: { provider: MeterProvider; instruments: Instruments } | undefined;
let snapshot: { links: Map<string, number>; alerts: Map<string, number> } = { links: new Map(), alerts: new Map() };

function instruments(): Instruments {
  const provider = metrics.getMeterProvider();
  if (made?.provider === provider) return made.instruments;
  const meter = provider.getMeter(INSTRUMENTATION_SCOPE);
  const instruments: Instruments = {
    runs: meter.createCounter("umconnect.sync.runs", { description: "Sync runs by kind and outcome (ran, coalesced, skipped, failed)" }),
    duration: meter.createHistogram("umconnect.sync.duration", { description: "Sync run duration", unit: "s" }),
    lag: meter.createHistogram("umconnect.sync.lag", { description: "From the trigger (notification, timer, admin) to the end of its run", unit: "s" }),
    writes: meter.createCounter("umconnect.sync.writes", { description: "Writes a run made, by kind and action" }),
    errors: meter.createCounter("umconnect.sync.errors", { description: "Failed runs by error code" }),
    deferred: meter.createCounter("umconnect.sync.deferred", { description: "Runs put off: Graph throttling (429) or an outage (store full or away, storage, Graph)" }),
    readDrift: meter.createCounter("umconnect.voicemail.read_drift", { description: "Read states that disagreed between the sides and were corrected (MWI drift)" }),
  };
  const links = meter.createObservableGauge("umconnect.links", { description: "Mailbox links by state (from the last alerts evaluation)" });
  links.addCallback((r) => { for (const [state, n] of snapshot.links) r.observe(n, { "umc.link_state": state }); });
  const alerts = meter.createObservableGauge("umconnect.alerts.open", { description: "Open alerts by code (from the last alerts evaluation)" });
  alerts.addCallback((r) => { for (const [code, n] of snapshot.alerts) r.observe(n, { "umc.alert_code": code }); });
  made = { provider, instruments };
  return instruments;
}

type RunOutcome = { status: "ran"; report?: unknown } | { status: "coalesced" } | { status: "skipped"; reason: string };

/**
 * Runs one sync request inside a span and records its metrics. `at` is when the trigger
 * happened (the queue message carries it).
 */
export async function traceSyncRun<T extends RunOutcome>(attrs: { kind: string; linkId: string; reason: string; at?: number }, run: () => Promise<T>): Promise<T> {
  const base: Attributes = { "umc.kind": attrs.kind, "umc.reason": attrs.reason };
  const tracer = trace.getTracer(INSTRUMENTATION_SCOPE);
  return tracer.startActiveSpan(`sync ${attrs.kind}`, { attributes: { ...base, "umc.link_id": attrs.linkId } }, async (span: Span) => {
    const started = performance.now();
    const m = instruments();
    try {
      const result = await run();
      const outcome = result.status;
      span.setAttribute("umc.outcome", outcome);
      m.runs.add(1, { ...base, "umc.outcome": outcome });
      m.duration.record((performance.now() - started) / 1000, { "umc.kind": attrs.kind, "umc.outcome": outcome });
      if (result.status === "ran") {
        if (attrs.at) m.lag.record(Math.max(0, Date.now() - attrs.at) / 1000, base);
        const report = result.report as { actions?: Record<string, number>; readDrift?: number } | undefined;
        for (const [action, n] of Object.entries(report?.actions ?? {})) if (n > 0) { m.writes.add(n, { "umc.kind": attrs.kind, "umc.action": action }); span.setAttribute(`umc.writes.${action}`, n); }
        if (report?.readDrift) m.readDrift.add(report.readDrift);
      }
      return result;
    } catch (e) {
      const code = isConnectorError(e) ? e.code : "INTERNAL";
      span.setStatus({ code: SpanStatusCode.ERROR, message: code });
      span.setAttribute("umc.error_code", code);
      m.runs.add(1, { ...base, "umc.outcome": "failed" });
      m.errors.add(1, { "umc.kind": attrs.kind, "umc.error_code": code });
      m.duration.record((performance.now() - started) / 1000, { "umc.kind": attrs.kind, "umc.outcome": "failed" });
      throw e;
    } finally {
      span.end();
    }
  });
}

/** A run put off for later: Graph throttling or an outage. */
export function recordDeferred(kind: string, code: string): void {
  instruments().deferred.add(1, { "umc.kind": kind, "umc.error_code": code });
}

/** What the alerts timer saw: links by state and open alerts by code, exported as gauges. */
export function recordStatusSnapshot(linksByState: Map<string, number>, alertsByCode: Map<string, number>): void {
  instruments();
  // A code or state that went away reads 0 rather than vanishing, so its series falls to zero.
  const withZeros = (before: Map<string, number>, now: Map<string, number>) => new Map([...[...before.keys()].map((k) => [k, 0] as const), ...now]);
  snapshot = { links: withZeros(snapshot.links, linksByState), alerts: withZeros(snapshot.alerts, alertsByCode) };
}

/**
 * Azure: the Azure Monitor OpenTelemetry distro with Entra authentication (the managed
 * identity holds Monitoring Metrics Publisher on the component; infra/app/rbac.bicep).
 * Nothing happens without an Application Insights connection string.
 * https://learn.microsoft.com/en-us/azure/azure-monitor/app/opentelemetry-enable?tabs=nodejs
 */
export async function startAzureMonitor(config: Pick<Config, "telemetry" | "identity">): Promise<boolean> {
  const connectionString = config.telemetry.appInsightsConnectionString;
  if (!connectionString) return false;
  const clientId = config.identity.managedIdentityClientId;
  const [{ useAzureMonitor }, { ManagedIdentityCredential }] = await Promise.all([import("@azure/monitor-opentelemetry"), import("@azure/identity")]);
  useAzureMonitor({
    azureMonitorExporterOptions: { connectionString, ...(clientId ? { credential: new ManagedIdentityCredential({ clientId }) } : {}) },
    // Request/dependency telemetry comes from the Functions host; these are the connector's own.
    instrumentationOptions: { http: { enabled: false }, azureSdk: { enabled: false } },
  });
  return true;
}
