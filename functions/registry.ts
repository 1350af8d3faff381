/**
 * THE list of functions. The Azure Functions runtime registers it (functions/index.ts) and the
 * local dev host serves it (src/host/devHost.ts). To add a function: write functions/<name>.ts
 * exporting a FunctionDefinition (wiring only: parse the trigger input, call src/, map the
 * result) and add it here.
 */
import type { HttpHandler } from "@azure/functions";
import type { FunctionDefinition } from "./definition.js";
import { healthFunction } from "./health.js";
import { consentCallbackFunction, consentStartFunction } from "./adminConsent.js";
import { adminStatusFunction } from "./adminStatus.js";
import { graphLifecycleFunction, graphNotificationsFunction } from "./graphNotifications.js";
import { storeNotificationsFunction } from "./storeNotifications.js";
import { syncWorkerFunction } from "./syncWorker.js";
import { alertsFunction, fastReadCheckFunction, pollStoresFunction, reconcileFunction, renewSubscriptionsFunction, watchStoresEvenFunction, watchStoresOddFunction } from "./timers.js";

const definitions: readonly FunctionDefinition[] = [
  healthFunction,
  graphNotificationsFunction,
  graphLifecycleFunction,
  storeNotificationsFunction,
  syncWorkerFunction,
  renewSubscriptionsFunction,
  pollStoresFunction,
  fastReadCheckFunction,
  reconcileFunction,
  alertsFunction,
  watchStoresEvenFunction,
  watchStoresOddFunction,
  consentStartFunction,
  consentCallbackFunction,
  adminStatusFunction,
];

/** Every HTTP function reads its body through the route's limit (src/security/httpBody.ts,
 *  loaded with the first request like the rest of src/). */
export const functionDefinitions: readonly FunctionDefinition[] = definitions.map((d): FunctionDefinition => {
  if (d.trigger.kind !== "http") return d;
  const { maxBodyBytes } = d.trigger;
  const handler = d.handler as HttpHandler;
  const bounded: HttpHandler = async (req, ctx) => (await import("../src/security/httpBody.js")).withBodyLimit(handler, maxBodyBytes)(req, ctx);
  return { name: d.name, trigger: d.trigger, handler: bounded };
});
