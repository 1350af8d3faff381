// Entry point for the Azure Functions runtime (package.json "main": dist/functions/index.js).
import { app } from "@azure/functions";
import { registerAll } from "./definition.js";
import { functionDefinitions } from "./registry.js";
import { getConfig } from "../src/config.js";
import { startAzureMonitor } from "../src/telemetry.js";

// Telemetry starts with the process; instruments bind to the provider on first use, so starting
// it asynchronously loses nothing. A configuration problem is left to the first invocation,
// which reports it with its function.
void Promise.resolve()
  .then(() => startAzureMonitor(getConfig()))
  .catch((e: unknown) => console.error(JSON.stringify({ level: "error", event: "telemetry.start.failed", error: e instanceof Error ? e.name : "unknown" })));

// Request bodies reach the handlers as streams, so each route's limit applies while reading
// (src/security/httpBody.ts) instead of after the host has buffered the whole body.
app.setup({ enableHttpStream: true });
registerAll(app, functionDefinitions);
