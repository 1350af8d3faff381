import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { FunctionDefinition } from "./definition.js";

async function status(req: HttpRequest, _ctx: InvocationContext): Promise<HttpResponseInit> {
  const [{ getDeps }, { statusResponse }, { isConnectorError }, { refusal }] = await Promise.all([
    import("../src/app/deps.js"), import("../src/admin/statusRoute.js"), import("../src/errors.js"), import("../src/admin/adminAuth.js"),
  ]);
  const deps = getDeps();
  try {
    const who = await deps.adminAuth().authenticate(req.headers.get("authorization"));
    deps.log.info("admin.status.read", who.kind === "entra" ? { by: who.objectId } : { by: "local-token" });
  } catch (e) {
    if (!isConnectorError(e)) throw e;
    deps.log.warn("admin.refused", { code: e.code });
    return refusal(e);
  }
  return statusResponse(deps, req.query);
}

export const adminStatusFunction: FunctionDefinition = {
  name: "adminStatus",
  trigger: { kind: "http", route: "admin/status", methods: ["GET"], authLevel: "anonymous", maxBodyBytes: 0 },
  handler: status,
};
