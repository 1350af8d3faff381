/**
 * The simulator against Microsoft's published examples (issue 13). The Graph-API cases are
 * shared with the real-tenant contract run (docsConformance.ts); the delivery cases below need
 * a receiver the service can reach, so they run against the simulator only. Each names the
 * documentation page its example comes from.
 */
import fs from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@microsoft/microsoft-graph-client";
import { ensureTestCerts } from "../harness/certs.js";
import { startGraphSimulator, type GraphSimulator } from "./index.js";
import { graphClientFor, msalFor } from "./clients.js";
import { docsConformance } from "./docsConformance.js";

const TENANT = "0c0ffee0-0000-4000-8000-00000000d0c5";
const APP = "a0a0a0a0-0000-4000-8000-00000000d0c5";
const DOCS = "https://learn.microsoft.com/en-us/graph";
const certs = ensureTestCerts();
let sim: GraphSimulator;
let graph: Client;
let receiver: https.Server;
let url = "";
const received: Array<{ path: string; at: number; value: Array<Record<string, unknown>> }> = [];
/** How long the receiver takes to answer, per path. */
const answerDelayMs = new Map<string, number>();

beforeAll(async () => {
  sim = await startGraphSimulator({ notificationRetryScale: 0.001, notificationBatchMs: 300 });
  sim.addTenant({ tenantId: TENANT, apps: [{ clientId: APP, clientSecret: "docs-secret", roles: ["Mail.ReadWrite", "Contacts.ReadWrite", "Calendars.Read"] }] });
  sim.addUser(TENANT, { id: "u-docs", userPrincipalName: "docs@contoso.test" });
  graph = graphClientFor(sim.origin, msalFor(sim.origin, TENANT, APP, { secret: "docs-secret" }));
  receiver = https.createServer({ key: fs.readFileSync(certs.serverKeyPath), cert: fs.readFileSync(certs.serverCertPath) }, (req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const u = new URL(req.url!, "https://x");
      const token = u.searchParams.get("validationToken");
      if (token !== null) return res.writeHead(200, { "content-type": "text/plain" }).end(token);
      received.push({ path: u.pathname, at: Date.now(), value: (JSON.parse(body) as { value: Array<Record<string, unknown>> }).value });
      setTimeout(() => { if (!res.destroyed) res.writeHead(202).end(); }, answerDelayMs.get(u.pathname) ?? 0);
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  url = `https://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});
afterAll(async () => { await sim?.stop(); receiver?.closeAllConnections(); receiver?.close(); });

docsConformance("simulator", () => ({ graph, userId: "u-docs", token: { endpoint: `${sim.origin}/${TENANT}/oauth2/v2.0/token`, clientId: APP, secret: "docs-secret" } }));

const items = (path: string) => received.filter((r) => r.path === path).flatMap((r) => r.value);
const inboxSubscription = (path: string, extra: Record<string, unknown> = {}) => graph.api("/subscriptions").post({
  changeType: "created,updated", notificationUrl: `${url}${path}`, lifecycleNotificationUrl: `${url}${path}/lifecycle`,
  resource: "users/u-docs/mailFolders('Inbox')/messages", expirationDateTime: new Date(Date.now() + 3600_000).toISOString(), clientState: "secretClientValue", latestSupportedTlsVersion: "v1_2", ...extra,
}) as Promise<{ id: string; resource: string; expirationDateTime: string }>;
const newMessage = (subject: string) => graph.api("/users/u-docs/mailFolders/inbox/messages").post({ subject, body: { contentType: "text", content: "x" }, singleValueExtendedProperties: [{ id: "Integer 0x0E07", value: "1" }] });

describe("Microsoft's documented examples: subscriptions and delivery (simulator)", () => {
  it(`creates the documented example subscription (mailFolders('Inbox') key syntax) and a second one for the same resource and URL (${DOCS}/api/subscription-post-subscriptions, example 1)`, async () => {
    const a = await inboxSubscription("/dup");
    const b = await inboxSubscription("/dup");
    expect(a.id).not.toBe(b.id);
    await newMessage("dup");
    // Both notify: a client that loses track of one gets everything twice.
    await expect.poll(() => new Set(items("/dup").map((n) => n.subscriptionId)).size, { timeout: 5000 }).toBe(2);
    await graph.api(`/subscriptions/${a.id}`).delete();
    await graph.api(`/subscriptions/${b.id}`).delete();
  });

  it(`refuses includeResourceData without an encryption certificate (${DOCS}/change-notifications-with-resource-data)`, async () => {
    await expect(inboxSubscription("/rich", { includeResourceData: true })).rejects.toMatchObject({ statusCode: 400 });
  });

  it(`refuses an expiration past the Outlook maximum, naming it (${DOCS}/api/resources/subscription#subscription-lifetime)`, async () => {
    await expect(inboxSubscription("/long", { expirationDateTime: new Date(Date.now() + 10_081 * 60_000).toISOString() })).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(/10080 minutes/) });
  });

  it(`refuses a subscription past 1,000 on one mailbox, all applications together (${DOCS}/outlook-change-notifications-overview)`, async () => {
    sim.foreignSubscriptions.set("u-docs", 1000);
    try {
      await expect(inboxSubscription("/full")).rejects.toMatchObject({ statusCode: 403 });
    } finally { sim.foreignSubscriptions.delete("u-docs"); }
  });

  it(`sends notifications that occur together in one POST, items shaped as the documented example (${DOCS}/change-notifications-delivery-webhooks, "notification payload")`, async () => {
    const s = await inboxSubscription("/batch");
    await Promise.all([newMessage("b1"), newMessage("b2"), newMessage("b3")]);
    await expect.poll(() => items("/batch").length, { timeout: 5000 }).toBe(3);
    expect(received.filter((r) => r.path === "/batch").map((r) => r.value.length)).toContain(3);
    expect(items("/batch")[0]).toMatchObject({ subscriptionId: s.id, changeType: "created", clientState: "secretClientValue", tenantId: TENANT, resource: expect.stringMatching(/^Users\/u-docs\/Messages\//), resourceData: { "@odata.type": "#Microsoft.Graph.Message", id: expect.any(String) } });
    await graph.api(`/subscriptions/${s.id}`).delete();
  });

  it(`a receiver that has not answered within 3 s failed: the notification is sent again (${DOCS}/change-notifications-delivery-webhooks, "respond within 3 seconds")`, async () => {
    const s = await inboxSubscription("/late");
    answerDelayMs.set("/late", 3500);
    await newMessage("late");
    await expect.poll(() => items("/late").length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    expect(sim.stats.slowAnswers).toBeGreaterThan(0);
    answerDelayMs.delete("/late");
    await graph.api(`/subscriptions/${s.id}`).delete();
  });

  it(`a slow endpoint is throttled, then its notifications are dropped and the subscription is told "missed" (${DOCS}/change-notifications-delivery-webhooks, "throttling", and ${DOCS}/change-notifications-lifecycle-events)`, async () => {
    const s = await inboxSubscription("/slow");
    answerDelayMs.set("/slow", 3200);
    const dropped = sim.stats.notificationsDropped;
    // One POST per change (apart by more than the 300 ms batching window); each answer comes too late.
    const until = Date.now() + 20_000;
    for (let i = 0; sim.stats.notificationsDropped === dropped && Date.now() < until; i++) { await newMessage(`slow ${i}`); await new Promise((r) => setTimeout(r, 400)); }
    expect(sim.stats.notificationsDropped).toBeGreaterThan(dropped);
    expect(sim.stats.endpointThrottled).toBeGreaterThan(0);
    answerDelayMs.delete("/slow");
    // Out of the drop state (10 model minutes): a "missed" lifecycle event for the subscription.
    await expect.poll(() => items("/slow/lifecycle").filter((n) => n.lifecycleEvent === "missed" && n.subscriptionId === s.id).length, { timeout: 20_000 }).toBeGreaterThan(0);
    await graph.api(`/subscriptions/${s.id}`).delete();
  });

  it(`Graph fires reauthorizationRequired near expiry and on a permission change, shaped as documented; reauthorize answers it (${DOCS}/change-notifications-lifecycle-events, "reauthorizationRequired")`, async () => {
    const s = await inboxSubscription("/life");
    sim.faults.reauthorizeLeadMs = 2 * 3600_000;
    try {
      await expect.poll(() => items("/life/lifecycle").filter((n) => n.lifecycleEvent === "reauthorizationRequired").length, { timeout: 5000 }).toBe(1);
      expect(items("/life/lifecycle")[0]).toEqual({ subscriptionId: s.id, subscriptionExpirationDateTime: s.expirationDateTime, tenantId: TENANT, clientState: "secretClientValue", lifecycleEvent: "reauthorizationRequired" });
      await graph.api(`/subscriptions/${s.id}/reauthorize`).post({});
    } finally { sim.faults.reauthorizeLeadMs = 0; }
    sim.changeAppRoles(TENANT, APP, ["Mail.ReadWrite", "Contacts.ReadWrite", "Calendars.Read"]);
    await expect.poll(() => items("/life/lifecycle").filter((n) => n.lifecycleEvent === "reauthorizationRequired").length, { timeout: 5000 }).toBe(2);
    await graph.api(`/subscriptions/${s.id}`).delete();
  });

  it(`admin consent redirects with tenant, state, scope and admin_consent, also through /organizations (https://learn.microsoft.com/en-us/entra/identity-platform/v2-admin-consent, "successful response")`, async () => {
    sim.consentTenant = TENANT;
    const go = (tenant: string) => fetch(`${sim.origin}/${tenant}/v2.0/adminconsent?client_id=${APP}&state=12345&redirect_uri=${encodeURIComponent("https://localhost/myapp/permissions")}&scope=https://graph.microsoft.com/.default`, { redirect: "manual" });
    for (const tenant of [TENANT, "organizations"]) {
      const loc = new URL((await go(tenant)).headers.get("location")!);
      expect(loc.searchParams.get("tenant")).toBe(TENANT);
      expect(loc.searchParams.get("state")).toBe("12345");
      expect(loc.searchParams.get("admin_consent")).toBe("True");
      expect(loc.searchParams.get("scope")).toMatch(/https:\/\/graph\.microsoft\.com\/Mail\.ReadWrite/);
    }
  });
});
