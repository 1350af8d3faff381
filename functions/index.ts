// Entry point for the Azure Functions runtime (package.json "main": dist/functions/index.js).
// Loads only the wiring: each function imports its part of src/ on first use, so a cold
// instance registers its functions in well under a second and the webhook path never waits
// for the IMAP, MIME, iCalendar or telemetry stacks (`npm run bench -- coldstart`).
import { app } from "@azure/functions";
import { registerAll, withStartFirst } from "./definition.js";
import { functionDefinitions } from "./registry.js";

// Telemetry starts once per process. A configuration problem is left to the invocations,
// which report it with their function.
let telemetry: Promise<unknown> | undefined;
const startTelemetry = () => (telemetry ??= Promise.all([import("../src/config.js"), import("../src/telemetry.js")])
  .then(([{ getConfig }, { startAzureMonitor }]) => startAzureMonitor(getConfig()))
  .catch((e: unknown) => console.error(JSON.stringify({ level: "error", event: "telemetry.start.failed", error: e instanceof Error ? e.name : "unknown" }))));

// Request bodies reach the handlers as streams, so each route's limit applies while reading
// (src/security/httpBody.ts) instead of after the host has buffered the whole body.
app.setup({ enableHttpStream: true });
registerAll(app, functionDefinitions.map((d) => withStartFirst(d, startTelemetry)));
