import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { FunctionDefinition } from "./definition.js";
import { getDeps } from "../src/app/deps.js";
import { selectLinks, statusPage, statusReport, type StatusQuery } from "../src/admin/status.js";
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
  const q = req.query;
  const limit = q.get("limit");
  const query: StatusQuery = {
    ...(q.get("tenant") ? { tenantId: q.get("tenant")! } : {}),
    ...(q.get("problems") === "1" || q.get("problems") === "true" ? { problems: true } : {}),
    ...(limit && /^\d{1,5}$/.test(limit) ? { limit: Number(limit) } : {}),
    ...(q.get("after") ? { after: q.get("after")! } : {}),
  };
  const report = selectLinks(await statusReport(deps), query);
  return q.get("format") === "html" ? statusPage(report, query) : { status: 200, jsonBody: report };
}

export const adminStatusFunction: FunctionDefinition = {
  name: "adminStatus",
  trigger: { kind: "http", route: "admin/status", methods: ["GET"], authLevel: "anonymous" },
  handler: status,
};
