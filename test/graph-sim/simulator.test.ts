/**
 * Contract tests: the product's real clients (msal-node, @microsoft/microsoft-graph-client)
 * against the simulator. The rules they check are listed with their sources in README.md.
 * Simulator-only controls (faults, acting as the Outlook user) are used where Graph gives no
 * way to provoke the behaviour.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import https from "node:https";
import fs from "node:fs";
import type { AddressInfo } from "node:net";
import { startGraphSimulator, type GraphSimulator } from "./index.js";
import { graphClientFor, msalFor } from "./clients.js";
import { ensureTestCerts } from "../harness/certs.js";
import type { Client } from "@microsoft/microsoft-graph-client";

const TENANT = "11111111-2222-3333-4444-555555555555";
const APP = "aaaaaaaa-0000-0000-0000-000000000001";
const certs = ensureTestCerts();
let sim: GraphSimulator;
let graph: Client;
let receiver: https.Server;
let receiverUrl = "";
const received: Array<{ url: string; body: string }> = [];
let receiverMode: "ok" | "fail" | "badEcho" = "ok";

beforeAll(async () => {
  sim = await startGraphSimulator({ notificationRetryScale: 0.01 });
  sim.addTenant({ tenantId: TENANT, apps: [{ clientId: APP, clientSecret: "s3cret-value", certificatePem: fs.readFileSync(certs.appCertPath, "utf8"), roles: ["Mail.ReadWrite", "User.Read.All"] }] });
  sim.addUser(TENANT, { id: "u-alice", userPrincipalName: "alice@contoso.test", proxyAddresses: ["SMTP:alice@contoso.test", "smtp:4711@voice.contoso.test"] });
  sim.addUser(TENANT, { id: "u-bob", userPrincipalName: "bob@contoso.test" });
  graph = graphClientFor(sim.origin, msalFor(sim.origin, TENANT, APP, { secret: "s3cret-value" }));
  receiver = https.createServer({ key: fs.readFileSync(certs.serverKeyPath), cert: fs.readFileSync(certs.serverCertPath) }, (req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const url = new URL(req.url!, "https://x");
      const token = url.searchParams.get("validationToken");
      if (token !== null) {
        if (receiverMode === "badEcho") return res.writeHead(200, { "content-type": "text/plain" }).end(encodeURIComponent(token));
        return res.writeHead(200, { "content-type": "text/plain" }).end(token);
      }
      received.push({ url: url.pathname, body });
      res.writeHead(receiverMode === "fail" ? 500 : 202).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  receiverUrl = `https://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});
afterAll(async () => { await sim?.stop(); receiver?.close(); });

const voicemailBody = (extra: Record<string, unknown> = {}) => ({
  subject: "Voice message from +49 30 1234567",
  body: { contentType: "text", content: "You received a voice message." },
  singleValueExtendedProperties: [
    { id: "Integer 0x0E07", value: "0" },
    { id: "String 0x001A", value: "IPM.Note.Microsoft.Voicemail.UM.CA" },
    { id: "String {00020386-0000-0000-C000-000000000046} Name X-UMC-Sync-Key", value: "key-1" },
  ],
  attachments: [{ "@odata.type": "#microsoft.graph.fileAttachment", name: "voicemail.wav", contentType: "audio/wav", contentBytes: Buffer.alloc(2000, 1).toString("base64") }],
  ...extra,
});

describe("token endpoint (Entra ID client credentials)", () => {
  it("issues tokens for a secret and for a certificate assertion", async () => {
    const bySecret = await msalFor(sim.origin, TENANT, APP, { secret: "s3cret-value" }).acquireTokenByClientCredential({ scopes: ["https://graph.microsoft.com/.default"] });
    expect(bySecret?.accessToken).toBeTruthy();
    const byCert = await msalFor(sim.origin, TENANT, APP, { certPath: certs.appCertPath, keyPath: certs.appKeyPath }).acquireTokenByClientCredential({ scopes: ["https://graph.microsoft.com/.default"] });
    expect(byCert?.accessToken).toBeTruthy();
  });
  it("rejects wrong credentials like Entra does", async () => {
    await expect(msalFor(sim.origin, TENANT, APP, { secret: "wrong" }).acquireTokenByClientCredential({ scopes: ["https://graph.microsoft.com/.default"] })).rejects.toMatchObject({ errorCode: "invalid_client", errorMessage: expect.stringContaining("AADSTS7000215") });
    await expect(msalFor(sim.origin, TENANT, "unknown-app", { secret: "x" }).acquireTokenByClientCredential({ scopes: ["https://graph.microsoft.com/.default"] })).rejects.toMatchObject({ errorMessage: expect.stringContaining("AADSTS700016") });
    await expect(msalFor(sim.origin, "no-such-tenant", APP, { secret: "x" }).acquireTokenByClientCredential({ scopes: ["https://graph.microsoft.com/.default"] })).rejects.toMatchObject({ errorMessage: expect.stringContaining("AADSTS90002") });
  });
  it("refuses Graph calls without a valid token, and without the permission", async () => {
    const res = await fetch(`${sim.origin}/v1.0/users`, { headers: { authorization: "Bearer forged.token.x" } });
    expect(res.status).toBe(401);
    expect((await res.json()).error.code).toBe("InvalidAuthenticationToken");
    sim.addTenant({ tenantId: "t-noperm", apps: [{ clientId: APP, clientSecret: "s", roles: [] }] });
    sim.addUser("t-noperm", { id: "u-x", userPrincipalName: "x@fabrikam.test" });
    const weak = graphClientFor(sim.origin, msalFor(sim.origin, "t-noperm", APP, { secret: "s" }));
    await expect(weak.api("/users/u-x/mailFolders/inbox/messages").get()).rejects.toMatchObject({ statusCode: 403, code: "ErrorAccessDenied" });
  });
});

describe("users and folders", () => {
  it("finds users by proxy address and UPN", async () => {
    const r = await graph.api("/users").filter("proxyAddresses/any(x:x eq 'smtp:4711@voice.contoso.test')").select("id,userPrincipalName").get();
    expect(r.value).toEqual([{ id: "u-alice", userPrincipalName: "alice@contoso.test" }]);
    expect((await graph.api("/users/bob@contoso.test").get()).id).toBe("u-bob");
    await expect(graph.api("/users").filter("startswith(displayName,'a')").get()).rejects.toMatchObject({ statusCode: 400 });
  });
  it("resolves well-known folders and creates child folders once", async () => {
    const inbox = await graph.api("/users/u-alice/mailFolders/inbox").get();
    expect(inbox.displayName).toBe("Inbox");
    const created = await graph.api("/users/u-alice/mailFolders/msgfolderroot/childFolders").post({ displayName: "Voicemail" });
    expect(created.id).toBeTruthy();
    await expect(graph.api("/users/u-alice/mailFolders/msgfolderroot/childFolders").post({ displayName: "voicemail" })).rejects.toMatchObject({ statusCode: 409, code: "ErrorFolderExists" });
  });
});

describe("messages", () => {
  it("creates drafts by default and received items when PR_MESSAGE_FLAGS is set", async () => {
    const draft = await graph.api("/users/u-alice/mailFolders/inbox/messages").post({ subject: "draft" });
    expect(draft.isDraft).toBe(true);
    const vm = await graph.api("/users/u-alice/mailFolders/inbox/messages").post(voicemailBody());
    expect(vm).toMatchObject({ isDraft: false, isRead: false, hasAttachments: true });
    const read = await graph.api("/users/u-alice/mailFolders/inbox/messages").post(voicemailBody({ singleValueExtendedProperties: [{ id: "Integer 0x0E07", value: "1" }] }));
    expect(read.isRead).toBe(true);
  });
  it("filters and expands single-value extended properties", async () => {
    const id = "String {00020386-0000-0000-C000-000000000046} Name X-UMC-Sync-Key";
    const r = await graph.api("/users/u-alice/mailFolders/inbox/messages")
      .filter(`singleValueExtendedProperties/Any(ep: ep/id eq '${id}' and ep/value eq 'key-1')`)
      .expand(`singleValueExtendedProperties($filter=id eq '${id}' or id eq 'String 0x001A')`).select("id,subject").get();
    expect(r.value).toHaveLength(1);
    expect(r.value[0].singleValueExtendedProperties.map((p: { value: string }) => p.value).sort()).toEqual(["IPM.Note.Microsoft.Voicemail.UM.CA", "key-1"]);
    expect(r.value[0].isRead).toBeUndefined();
  });
  it("patches isRead, moves with immutable ids, deletes", async () => {
    const m = await graph.api("/users/u-alice/mailFolders/inbox/messages").post(voicemailBody());
    const patched = await graph.api(`/users/u-alice/messages/${m.id}`).patch({ isRead: true });
    expect(patched.isRead).toBe(true);
    expect(patched.changeKey).not.toBe(m.changeKey);
    const moved = await graph.api(`/users/u-alice/messages/${m.id}/move`).header("Prefer", 'IdType="ImmutableId"').post({ destinationId: "deleteditems" });
    expect(moved.id).toBe(m.id);
    const movedAgain = await graph.api(`/users/u-alice/messages/${m.id}/move`).post({ destinationId: "inbox" });
    expect(movedAgain.id).not.toBe(m.id);
    await graph.api(`/users/u-alice/messages/${movedAgain.id}`).delete();
    await expect(graph.api(`/users/u-alice/messages/${movedAgain.id}`).get()).rejects.toMatchObject({ statusCode: 404, code: "ErrorItemNotFound" });
  });
  it("refuses inline attachments of 3 MB and more", async () => {
    const big = voicemailBody({ attachments: [{ "@odata.type": "#microsoft.graph.fileAttachment", name: "big.wav", contentType: "audio/wav", contentBytes: Buffer.alloc(3 * 1024 * 1024).toString("base64") }] });
    await expect(graph.api("/users/u-alice/mailFolders/inbox/messages").post(big)).rejects.toMatchObject({ statusCode: 413 });
  });
});

describe("delta", () => {
  it("pages with maxpagesize, reports changes and removals, and expires tokens with 410", async () => {
    const folder = await graph.api("/users/u-bob/mailFolders/msgfolderroot/childFolders").post({ displayName: "VM" });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await graph.api(`/users/u-bob/mailFolders/${folder.id}/messages`).post(voicemailBody())).id);
    const pages: unknown[][] = [];
    let next: string | undefined = `/users/u-bob/mailFolders/${folder.id}/messages/delta?$select=isRead,subject`;
    let deltaLink = "";
    while (next) {
      const page: Record<string, unknown> = await graph.api(next).header("Prefer", "odata.maxpagesize=2").get();
      pages.push(page.value as unknown[]);
      next = page["@odata.nextLink"] as string | undefined;
      if (page["@odata.deltaLink"]) deltaLink = page["@odata.deltaLink"] as string;
    }
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(await graph.api(deltaLink).get()).toMatchObject({ value: [] });
    sim.outlook("u-bob").markRead(ids[0]!);
    sim.outlook("u-bob").delete(ids[1]!);
    const round = await graph.api(deltaLink).get();
    expect(round.value).toEqual(expect.arrayContaining([expect.objectContaining({ id: ids[1], "@removed": { reason: "deleted" } }), expect.objectContaining({ id: ids[0], isRead: true })]));
    sim.expireDeltaTokens("u-bob");
    await expect(graph.api(round["@odata.deltaLink"]).get()).rejects.toMatchObject({ statusCode: 410 });
  });

  it("delivers mail to the Inbox: delta with $filter=receivedDateTime ge, $select of Cc/Reply-To, meeting requests typed, PidTagMessageSize expanded, PATCH isRead reported", async () => {
    // message-delta: the $filter is taken on the first round and baked into the links.
    const o = sim.outlook("u-alice");
    const old = o.receive({ subject: "old", from: { address: "x@contoso.test" }, body: { contentType: "text", content: "old" }, receivedDateTime: "2020-01-01T00:00:00Z" });
    const fresh = o.receive({ subject: "fresh", from: { address: "ann@contoso.test" }, cc: [{ address: "cc@contoso.test" }], replyTo: [{ address: "rt@contoso.test" }], body: { contentType: "html", content: "<p>hi</p>" }, attachments: [{ name: "a.txt", contentType: "text/plain", bytes: Buffer.from("abc") }] });
    const invite = o.receive({ subject: "meeting", from: { address: "ann@contoso.test" }, body: { contentType: "text", content: "" }, messageClass: "IPM.Schedule.Meeting.Request", odataType: "#microsoft.graph.eventMessageRequest" });
    const url = `/users/u-alice/mailFolders/inbox/messages/delta?$filter=${encodeURIComponent("receivedDateTime ge 2025-01-01T00:00:00Z")}&$select=subject,ccRecipients,replyTo,isRead&$expand=${encodeURIComponent("singleValueExtendedProperties($filter=id eq 'Integer 0x0E08')")}`;
    const first = await graph.api(url).header("Prefer", "odata.maxpagesize=50").get();
    const byId = new Map<string, Record<string, any>>((first.value as Array<Record<string, any>>).map((m) => [m.id, m]));
    expect(byId.has(old.id)).toBe(false);
    expect(byId.get(fresh.id)).toMatchObject({ subject: "fresh", ccRecipients: [{ emailAddress: { address: "cc@contoso.test" } }], replyTo: [{ emailAddress: { address: "rt@contoso.test" } }] });
    expect(byId.get(fresh.id)!.body).toBeUndefined(); // $select
    expect(Number(byId.get(fresh.id)!.singleValueExtendedProperties[0].value)).toBe(1024 + 5 + 9 + 3);
    expect(byId.get(invite.id)!["@odata.type"]).toBe("#microsoft.graph.eventMessageRequest");
    await graph.api(`/users/u-alice/messages/${fresh.id}`).patch({ isRead: true });
    const round = await graph.api(first["@odata.deltaLink"]).get();
    expect(round.value).toEqual([expect.objectContaining({ id: fresh.id, isRead: true })]);
    await expect(graph.api(`/users/u-alice/mailFolders/inbox/messages/delta?$filter=${encodeURIComponent("subject eq 'x'")}`).get()).rejects.toMatchObject({ statusCode: 400 });
  });
});

describe("throttling and batching", () => {
  it("answers the 5th concurrent request per app and mailbox with 429 + Retry-After", async () => {
    const slow = await startGraphSimulator({ latencyMs: 150 });
    slow.addTenant({ tenantId: TENANT, apps: [{ clientId: APP, clientSecret: "s", roles: ["Mail.ReadWrite"] }] });
    slow.addUser(TENANT, { id: "u1", userPrincipalName: "u1@contoso.test" });
    const cca = msalFor(slow.origin, TENANT, APP, { secret: "s" });
    const token = (await cca.acquireTokenByClientCredential({ scopes: ["https://graph.microsoft.com/.default"] }))!.accessToken;
    const results = await Promise.all(Array.from({ length: 6 }, () => fetch(`${slow.origin}/v1.0/users/u1/mailFolders/inbox/messages`, { headers: { authorization: `Bearer ${token}` } })));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(1);
    const throttled = results.find((r) => r.status === 429)!;
    expect(throttled.headers.get("retry-after")).toBe("1");
    expect((await throttled.json()).error.message).toMatch(/MailboxConcurrency/);
    await slow.stop();
  });
  it("enforces the per-mailbox request budget and injects 5xx bursts", async () => {
    const tight = await startGraphSimulator({ requestBudget: 3 });
    tight.addTenant({ tenantId: TENANT, apps: [{ clientId: APP, clientSecret: "s", roles: ["Mail.ReadWrite"] }] });
    tight.addUser(TENANT, { id: "u1", userPrincipalName: "u1@contoso.test" });
    const token = (await msalFor(tight.origin, TENANT, APP, { secret: "s" }).acquireTokenByClientCredential({ scopes: ["https://graph.microsoft.com/.default"] }))!.accessToken;
    const get = () => fetch(`${tight.origin}/v1.0/users/u1/mailFolders/inbox`, { headers: { authorization: `Bearer ${token}` } });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await get()).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const over = await get();
    expect(Number(over.headers.get("retry-after"))).toBeGreaterThan(500); // until the 10-minute window ends
    tight.faults.fail5xxNext = 1;
    const failed = await fetch(`${tight.origin}/v1.0/users`, { headers: { authorization: `Bearer ${token}` } });
    expect(failed.status).toBe(503);
    await tight.stop();
  });

  it("runs $batch items with per-item status and dependsOn", async () => {
    const r = await graph.api("/$batch").post({ requests: [
      { id: "1", method: "GET", url: "/users/u-alice/mailFolders/inbox" },
      { id: "2", method: "GET", url: "/users/u-alice/messages/does-not-exist" },
      { id: "3", method: "GET", url: "/users/u-alice/mailFolders/inbox", dependsOn: ["2"] },
    ] });
    const byId = Object.fromEntries(r.responses.map((x: { id: string; status: number }) => [x.id, x.status]));
    expect(byId).toEqual({ 1: 200, 2: 404, 3: 424 });
    await expect(graph.api("/$batch").post({ requests: Array.from({ length: 21 }, (_, i) => ({ id: String(i), method: "GET", url: "/users/u-alice" })) })).rejects.toMatchObject({ statusCode: 400 });
  });
});

describe("subscriptions and notifications", () => {
  it("validates the endpoint, applies expiry rules and notifies with clientState", async () => {
    receiverMode = "ok";
    const soon = new Date(Date.now() + 10 * 60_000).toISOString();
    const sub = await graph.api("/subscriptions").post({ changeType: "created,updated,deleted", notificationUrl: `${receiverUrl}/notify`, lifecycleNotificationUrl: `${receiverUrl}/lifecycle`, resource: "users/u-alice/mailFolders/inbox/messages", expirationDateTime: soon, clientState: "cs-1" });
    expect(Date.parse(sub.expirationDateTime)).toBeGreaterThanOrEqual(Date.now() + 44 * 60_000);
    // Real Graph accepts a second subscription for the same resource and URL (no 409).
    const second = await graph.api("/subscriptions").post({ changeType: "created,updated,deleted", notificationUrl: `${receiverUrl}/notify`, resource: "users/u-alice/mailFolders/inbox/messages", expirationDateTime: soon });
    expect(second.id).not.toBe(sub.id);
    await graph.api(`/subscriptions/${second.id}`).delete();
    await expect(graph.api("/subscriptions").post({ changeType: "created", notificationUrl: `${receiverUrl}/notify`, resource: "users/u-bob/messages", expirationDateTime: new Date(Date.now() + 10_081 * 60_000).toISOString() })).rejects.toMatchObject({ statusCode: 400 });
    const m = await graph.api("/users/u-alice/mailFolders/inbox/messages").post(voicemailBody());
    await expect.poll(() => received.filter((r) => r.url === "/notify").map((r) => JSON.parse(r.body).value[0]).find((n: { resourceData: { id: string } }) => n.resourceData.id === m.id), { timeout: 5000 })
      .toMatchObject({ subscriptionId: sub.id, changeType: "created", clientState: "cs-1", tenantId: TENANT });
    const renewed = await graph.api(`/subscriptions/${sub.id}`).patch({ expirationDateTime: new Date(Date.now() + 3 * 24 * 3600_000).toISOString() });
    expect(Date.parse(renewed.expirationDateTime)).toBeGreaterThan(Date.now() + 2 * 24 * 3600_000);
    sim.fireLifecycle(sub.id, "missed");
    await expect.poll(() => received.filter((r) => r.url === "/lifecycle").map((r) => JSON.parse(r.body).value[0].lifecycleEvent), { timeout: 5000 }).toContain("missed");
    await graph.api(`/subscriptions/${sub.id}`).delete();
    await expect(graph.api(`/subscriptions/${sub.id}`).get()).rejects.toMatchObject({ statusCode: 404 });
  });
  it("refuses a subscription whose endpoint does not echo the decoded token", async () => {
    receiverMode = "badEcho";
    await expect(graph.api("/subscriptions").post({ changeType: "created", notificationUrl: `${receiverUrl}/notify`, resource: "users/u-bob/messages", expirationDateTime: new Date(Date.now() + 3600_000).toISOString() })).rejects.toMatchObject({ statusCode: 400, code: "ValidationError" });
    receiverMode = "ok";
  });
  it("retries notifications while the receiver fails, and can drop or duplicate them", async () => {
    const sub = await graph.api("/subscriptions").post({ changeType: "created", notificationUrl: `${receiverUrl}/retry`, resource: "users/u-bob/messages", expirationDateTime: new Date(Date.now() + 3600_000).toISOString(), clientState: "cs-2" });
    receiverMode = "fail";
    await graph.api("/users/u-bob/mailFolders/inbox/messages").post(voicemailBody());
    await expect.poll(() => received.filter((r) => r.url === "/retry").length, { timeout: 5000 }).toBeGreaterThanOrEqual(2);
    receiverMode = "ok";
    const before = received.filter((r) => r.url === "/retry").flatMap((r) => JSON.parse(r.body).value as unknown[]).length;
    await expect.poll(() => sim.stats.notificationsSent, { timeout: 10_000 }).toBeGreaterThan(0);
    sim.faults.duplicateNotifications = true;
    await graph.api("/users/u-bob/mailFolders/inbox/messages").post(voicemailBody());
    // Items, not POSTs: Graph batches notifications that occur together.
    const items = () => received.filter((r) => r.url === "/retry").flatMap((r) => JSON.parse(r.body).value as unknown[]).length;
    await expect.poll(() => items() - before, { timeout: 5000 }).toBeGreaterThanOrEqual(3);
    sim.faults.duplicateNotifications = false;
    await graph.api(`/subscriptions/${sub.id}`).delete();
  });
});
