import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { FunctionDefinition } from "./definition.js";
// Dependency-free module: the limits cost nothing at start-up (src/webhooks/limits.ts).
import { MAX_STORE_BODY_BYTES } from "../src/webhooks/limits.js";

async function storeNotifications(req: HttpRequest, _ctx: InvocationContext): Promise<HttpResponseInit> {
  // src/ is imported on first use (functions/index.ts: only the wiring loads at start).
  const [{ getDeps }, { handleStoreNotification }] = await Promise.all([import("../src/app/deps.js"), import("../src/app/webhooks.js")]);
  return handleStoreNotification(getDeps(), req.params.endpointId ?? "", await req.text(), req.headers.get("x-umc-timestamp"), req.headers.get("x-umc-signature"));
}

export const storeNotificationsFunction: FunctionDefinition = {
  name: "storeNotifications",
  trigger: { kind: "http", route: "store/notifications/{endpointId}", methods: ["POST"], authLevel: "anonymous", maxBodyBytes: MAX_STORE_BODY_BYTES },
  handler: storeNotifications,
};
