// Entry point for the Azure Functions runtime (package.json "main": dist/functions/index.js).
import { app } from "@azure/functions";
import { registerAll } from "./definition.js";
import { functionDefinitions } from "./registry.js";
import { startAzureMonitor } from "../src/telemetry.js";

// Platform settings (infra/app/api.bicep), not connector config: the App Insights component
// and the identity that may publish to it. Instruments bind to the provider on first use, so
// starting it asynchronously loses nothing.
void startAzureMonitor({
  connectionString: process.env.APPLICATIONINSIGHTS_CONNECTION_STRING,
  managedIdentityClientId: process.env.UMC_MANAGED_IDENTITY_CLIENT_ID,
}).catch((e: unknown) => console.error(JSON.stringify({ level: "error", event: "telemetry.start.failed", error: String(e) })));

registerAll(app, functionDefinitions);
