import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { FunctionDefinition } from "./definition.js";

const load = () => Promise.all([import("../src/app/deps.js"), import("../src/admin/consent.js")]);

async function start(req: HttpRequest, _ctx: InvocationContext): Promise<HttpResponseInit> {
  const [{ getDeps }, { consentStart, operatorOf }] = await load();
  const deps = getDeps();
  return consentStart(deps, req.query.get("tenant"), await operatorOf(deps, req.headers.get("authorization")));
}

async function callback(req: HttpRequest, _ctx: InvocationContext): Promise<HttpResponseInit> {
  const [{ getDeps }, { consentCallback }] = await load();
  return consentCallback(getDeps(), req.query);
}

export const consentStartFunction: FunctionDefinition = {
  name: "adminConsentStart",
  trigger: { kind: "http", route: "admin/consent/start", methods: ["GET"], authLevel: "anonymous", maxBodyBytes: 0 },
  handler: start,
};

export const consentCallbackFunction: FunctionDefinition = {
  name: "adminConsentCallback",
  trigger: { kind: "http", route: "admin/consent/callback", methods: ["GET"], authLevel: "anonymous", maxBodyBytes: 0 },
  handler: callback,
};
