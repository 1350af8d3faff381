import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { FunctionDefinition } from "./definition.js";

export async function health(_req: HttpRequest, _ctx: InvocationContext): Promise<HttpResponseInit> {
  const [{ getDeps }, { checkHealth }] = await Promise.all([import("../src/app/deps.js"), import("../src/app/health.js")]);
  const report = await checkHealth(getDeps());
  return { status: report.status === "ok" ? 200 : 503, jsonBody: report };
}

export const healthFunction: FunctionDefinition = {
  name: "health",
  trigger: { kind: "http", route: "health", methods: ["GET"], authLevel: "anonymous", maxBodyBytes: 0 },
  handler: health,
};
