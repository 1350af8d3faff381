import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { FunctionDefinition } from "./definition.js";
import { getDeps } from "../src/app/deps.js";
import { adminAuthorized, statusPage, statusReport } from "../src/admin/status.js";

async function status(req: HttpRequest, _ctx: InvocationContext): Promise<HttpResponseInit> {
  const deps = getDeps();
  if (!adminAuthorized(deps, req.headers.get("authorization"))) return { status: 401, headers: { "www-authenticate": "Bearer" }, jsonBody: { error: "UNAUTHORIZED" } };
  const report = await statusReport(deps);
  return req.query.get("format") === "html" ? statusPage(report) : { status: 200, jsonBody: report };
}

export const adminStatusFunction: FunctionDefinition = {
  name: "adminStatus",
  trigger: { kind: "http", route: "admin/status", methods: ["GET"], authLevel: "anonymous" },
  handler: status,
};
