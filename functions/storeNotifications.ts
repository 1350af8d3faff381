import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { FunctionDefinition } from "./definition.js";

async function storeNotifications(req: HttpRequest, _ctx: InvocationContext): Promise<HttpResponseInit> {
  // src/ is imported on first use (functions/index.ts: only the wiring loads at start).
  const [{ getDeps }, { handleStoreNotification }] = await Promise.all([import("../src/app/deps.js"), import("../src/app/webhooks.js")]);
  return handleStoreNotification(getDeps(), req.params.endpointId ?? "", await req.text(), req.headers.get("x-umc-timestamp"), req.headers.get("x-umc-signature"));
}

export const storeNotificationsFunction: FunctionDefinition = {
  name: "storeNotifications",
  trigger: { kind: "http", route: "store/notifications/{endpointId}", methods: ["POST"], authLevel: "anonymous", maxBodyBytes: 256 * 1024 /* = MAX_STORE_BODY_BYTES (src/webhooks/storeNotifications.ts; test/e2e/tenantIsolation.test.ts compares) */ },
  handler: storeNotifications,
};
