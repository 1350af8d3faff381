import { afterAll, describe, expect, it } from "vitest";
import { metrics, trace } from "@opentelemetry/api";
import { startAzureMonitor } from "../src/telemetry.js";
import { loadConfig } from "../src/config.js";

afterAll(async () => {
  const { shutdownAzureMonitor } = await import("@azure/monitor-opentelemetry");
  await shutdownAzureMonitor().catch(() => undefined);
  metrics.disable();
  trace.disable();
});

describe("Azure Monitor start-up", () => {
  it("does nothing without a connection string", async () => {
    expect(await startAzureMonitor({ telemetry: {}, identity: { authorityHost: "https://login.microsoftonline.com" } })).toBe(false);
  });
  it("registers real meter and tracer providers when App Insights is configured", async () => {
    const noopMeter = metrics.getMeterProvider();
    const config = loadConfig({ UMC_ENVIRONMENT: "test", UMC_STORAGE_CONNECTION_STRING: "UseDevelopmentStorage=true", APPLICATIONINSIGHTS_CONNECTION_STRING: "InstrumentationKey=00000000-0000-4000-8000-000000000000;IngestionEndpoint=https://127.0.0.1:9/" });
    expect(await startAzureMonitor(config)).toBe(true);
    expect(metrics.getMeterProvider()).not.toBe(noopMeter);
    const span = trace.getTracer("umconnect").startSpan("probe");
    expect(span.spanContext().traceId).not.toBe("00000000000000000000000000000000");
    span.end();
  });
});
