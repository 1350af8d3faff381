import { afterAll, beforeAll, describe } from "vitest";
import { startGraphSimulator, type GraphSimulator } from "./index.js";
import { graphClientFor, msalFor } from "./clients.js";
import { graphContract } from "./contract.js";
import { docsConformance } from "./docsConformance.js";
import type { Client } from "@microsoft/microsoft-graph-client";

let sim: GraphSimulator;
let simGraph: Client;
beforeAll(async () => {
  sim = await startGraphSimulator();
  sim.addTenant({ tenantId: "t-contract", apps: [{ clientId: "app", clientSecret: "secret", roles: ["Mail.ReadWrite"] }] });
  sim.addUser("t-contract", { id: "u1", userPrincipalName: "u1@contoso.test" });
  simGraph = graphClientFor(sim.origin, msalFor(sim.origin, "t-contract", "app", { secret: "secret" }));
});
afterAll(async () => { await sim?.stop(); });

graphContract("simulator", () => ({ graph: simGraph, userId: "u1" }));

// A real tenant, when its credentials are given (a test tenant: the suite writes and deletes one message).
const real = {
  tenant: process.env.UMC_CONTRACT_TENANT_ID, clientId: process.env.UMC_CONTRACT_CLIENT_ID,
  secret: process.env.UMC_CONTRACT_CLIENT_SECRET, user: process.env.UMC_CONTRACT_USER,
};
const haveTenant = Boolean(real.tenant && real.clientId && real.secret && real.user);
if (!haveTenant) console.log("Graph contract against a real tenant not run: set UMC_CONTRACT_TENANT_ID, UMC_CONTRACT_CLIENT_ID, UMC_CONTRACT_CLIENT_SECRET and UMC_CONTRACT_USER to run it.");
describe.runIf(haveTenant)("real tenant", () => {
  const graph = haveTenant ? graphClientFor("https://graph.microsoft.com", msalFor("https://login.microsoftonline.com", real.tenant!, real.clientId!, { secret: real.secret! })) : undefined;
  graphContract("real tenant", () => ({ graph: graph!, userId: real.user! }));
  // The same documented examples the simulator is checked against (docs-conformance.test.ts):
  // one run against a developer tenant shows where the simulator and Graph differ.
  docsConformance("real tenant", () => ({ graph: graph!, userId: real.user!, token: { endpoint: `https://login.microsoftonline.com/${real.tenant}/oauth2/v2.0/token`, clientId: real.clientId!, secret: real.secret! } }));
});
