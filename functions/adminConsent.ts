import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { FunctionDefinition } from "./definition.js";
import { getDeps } from "../src/app/deps.js";
import { consentCallback, consentStart } from "../src/admin/consent.js";

async function start(req: HttpRequest, _ctx: InvocationContext): Promise<HttpResponseInit> {
  return consentStart(getDeps(), req.query.get("tenant"));
}

async function callback(req: HttpRequest, _ctx: InvocationContext): Promise<HttpResponseInit> {
  return consentCallback(getDeps(), req.query);
}

export const consentStartFunction: FunctionDefinition = {
  name: "adminConsentStart",
  trigger: { kind: "http", route: "admin/consent/start", methods: ["GET"], authLevel: "anonymous" },
  handler: start,
};

export const consentCallbackFunction: FunctionDefinition = {
  name: "adminConsentCallback",
  trigger: { kind: "http", route: "admin/consent/callback", methods: ["GET"], authLevel: "anonymous" },
  handler: callback,
};
