import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { FunctionDefinition } from "./definition.js";
import { getDeps } from "../src/app/deps.js";
import { statusPage, statusReport } from "../src/admin/status.js";
import { isConnectorError } from "../src/errors.js";

async function status(req: HttpRequest, _ctx: InvocationContext): Promise<HttpResponseInit> {
  const deps = getDeps();
  try {
    const who = await deps.adminAuth().authenticate(req.headers.get("authorization"));
    deps.log.info("admin.status.read", who.kind === "entra" ? { by: who.objectId } : { by: "local-token" });
  } catch (e) {
    if (!isConnectorError(e)) throw e;
    deps.log.warn("admin.refused", { code: e.code });
    // RFC 6750 section 3.1: invalid_token for no/bad credentials, insufficient_scope for a missing role.
    const error = e.httpStatus === 403 ? "insufficient_scope" : "invalid_token";
    return { status: e.httpStatus, headers: { "www-authenticate": `Bearer error="${error}"` }, jsonBody: { error: e.code } };
  }
  const report = await statusReport(deps);
  return req.query.get("format") === "html" ? statusPage(report) : { status: 200, jsonBody: report };
}

export const adminStatusFunction: FunctionDefinition = {
  name: "adminStatus",
  trigger: { kind: "http", route: "admin/status", methods: ["GET"], authLevel: "anonymous" },
  handler: status,
};
