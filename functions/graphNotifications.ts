import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { FunctionDefinition } from "./definition.js";
// Dependency-free module: the limits cost nothing at start-up (src/webhooks/limits.ts).
import { MAX_NOTIFICATION_BODY_BYTES } from "../src/webhooks/limits.js";

// src/ is imported on first use (functions/index.ts: only the wiring loads at start).
const load = () => Promise.all([import("../src/app/deps.js"), import("../src/app/webhooks.js")]);

async function graphNotifications(req: HttpRequest, _ctx: InvocationContext): Promise<HttpResponseInit> {
  const [{ getDeps }, { handleGraphNotification }] = await load();
  return handleGraphNotification(getDeps(), new URL(req.url), await req.text(), "change");
}

async function graphLifecycle(req: HttpRequest, _ctx: InvocationContext): Promise<HttpResponseInit> {
  const [{ getDeps }, { handleGraphNotification }] = await load();
  return handleGraphNotification(getDeps(), new URL(req.url), await req.text(), "lifecycle");
}

export const graphNotificationsFunction: FunctionDefinition = {
  name: "graphNotifications",
  trigger: { kind: "http", route: "graph/notifications", methods: ["POST"], authLevel: "anonymous", maxBodyBytes: MAX_NOTIFICATION_BODY_BYTES },
  handler: graphNotifications,
};

export const graphLifecycleFunction: FunctionDefinition = {
  name: "graphLifecycle",
  trigger: { kind: "http", route: "graph/lifecycle", methods: ["POST"], authLevel: "anonymous", maxBodyBytes: MAX_NOTIFICATION_BODY_BYTES },
  handler: graphLifecycle,
};
