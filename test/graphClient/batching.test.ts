/**
 * Small writes to one mailbox that wait together travel as one JSON batch (src/graph/batch.ts,
 * src/graph/client.ts), through the real GraphClient over https against the Graph simulator,
 * which counts every batch item against the mailbox's 4 requests in flight
 * (https://learn.microsoft.com/en-us/graph/json-batching;
 * https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits).
 *
 * Breaks seen red: the items not chained with dependsOn (they run side by side in the batch and
 * pass the mailbox's 4: "throttled 0"); items answered 424 not sent again ("the items after a
 * failed one"); throttled items not sent again ("429 items"); every request sent alone ("fewer
 * round trips"); a missing first answer taken for "not run" (the chain is sent again and again:
 * "a batch answer that is not Graph's" times out).
 */
import fs from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTestCerts } from "../harness/certs.js";
import { GraphClient } from "../../src/graph/client.js";
import { ConnectorError } from "../../src/errors.js";
import { startGraphSimulator, type GraphSimulator } from "../graph-sim/index.js";
import { msalFor } from "../graph-sim/clients.js";

const TENANT = "11111111-2222-3333-4444-555555555557";
const APP = "aaaaaaaa-0000-0000-0000-000000000003";
const SECRET = "s3cret-value";

let sim: GraphSimulator;
beforeAll(async () => {
  sim = await startGraphSimulator({ latencyMs: 5 });
  sim.addTenant({ tenantId: TENANT, apps: [{ clientId: APP, clientSecret: SECRET, roles: ["Mail.ReadWrite", "Contacts.ReadWrite", "User.Read.All"] }] });
  sim.addUser(TENANT, { id: "u-batch", userPrincipalName: "batch@contoso.test" });
}, 30_000);
afterAll(async () => { await sim?.stop(); });

function client(): GraphClient {
  const app = msalFor(sim.origin, TENANT, APP, { secret: SECRET });
  const tokens = { token: async () => (await app.acquireTokenByClientCredential({ scopes: ["https://graph.microsoft.com/.default"] }))!.accessToken };
  return new GraphClient({ baseUrl: sim.origin, tenantId: TENANT, tokens, maxConcurrencyPerMailbox: 4 });
}

function messages(n: number): string[] {
  const o = sim.outlook("u-batch");
  return Array.from({ length: n }, (_, i) => o.receive({ subject: `m${i}`, from: { address: "x@example.test" }, body: { contentType: "text", content: "" } }).id);
}

const markRead = (g: GraphClient, id: string) => g.request({ method: "PATCH", url: `/users/u-batch/messages/${encodeURIComponent(id)}`, body: { isRead: true }, mailbox: "u-batch", batchable: true });
const batches = () => sim.stats.byRoute.get("POST /$batch") ?? 0;

describe("JSON batching of small writes", () => {
  it("sends writes that wait together as chained batches: fewer round trips, never more than 4 in flight", async () => {
    const ids = messages(60);
    const g = client();
    const [before, throttled] = [batches(), sim.stats.throttled];
    await Promise.all(ids.map((id) => markRead(g, id)));
    expect(sim.outlook("u-batch").messages().filter((m) => ids.includes(m.id) && m.isRead)).toHaveLength(60);
    expect(sim.stats.throttled - throttled).toBe(0);
    expect(sim.stats.maxInFlight.get("u-batch")).toBeLessThanOrEqual(4);
    // 60 writes: 4 go alone into the free slots, the 56 that wait travel in batches of up to 20.
    expect(batches() - before).toBeGreaterThanOrEqual(3);
    expect(batches() - before).toBeLessThan(10);
    // Each item counts against the mailbox's budget as a request would.
    expect(g.stats.byMailbox.get("u-batch")).toBe(60);
  });

  it("a request that waits alone is sent as it is", async () => {
    const [id] = messages(1);
    const g = client();
    const before = batches();
    await markRead(g, id!);
    expect(batches()).toBe(before);
  });

  it("fails only the item that failed; the items after it in the chain are sent again", async () => {
    const ids = messages(30);
    ids.splice(10, 0, "AAMk-no-such-message");
    const g = client();
    const results = await Promise.allSettled(ids.map((id) => markRead(g, id)));
    const failed = results.flatMap((r, i) => (r.status === "rejected" ? [[ids[i], (r.reason as ConnectorError).code]] : []));
    expect(failed).toEqual([["AAMk-no-such-message", "GRAPH_NOT_FOUND"]]);
    expect(sim.outlook("u-batch").messages().filter((m) => ids.includes(m.id) && m.isRead)).toHaveLength(30);
  });

  it("sends throttled items again after their Retry-After", async () => {
    const ids = messages(30);
    const g = client();
    // The first 4 requests hold the 4 slots, so the other 26 wait and go as batches; the batches'
    // first items are then answered 429 (and the items after them 424).
    const plan = sim.mailboxFaults.arm("u-batch");
    Object.assign(plan, { stallNext: 4, stallMs: 400, retryAfterSeconds: 1 });
    const before = { batches: batches(), throttled: sim.mailboxFaults.delivered("u-batch").throttled };
    const results = Promise.allSettled(ids.map((id) => markRead(g, id)));
    while (sim.mailboxFaults.delivered("u-batch").stalled < 4) await new Promise((r) => setTimeout(r, 10));
    plan.throttleNext = 3;
    const settled = await results;
    expect(settled.filter((r) => r.status === "rejected")).toEqual([]);
    expect(sim.mailboxFaults.delivered("u-batch").throttled - before.throttled).toBe(3);
    expect(batches() - before.batches).toBeGreaterThanOrEqual(2);
    expect(sim.outlook("u-batch").messages().filter((m) => ids.includes(m.id) && m.isRead)).toHaveLength(30);
  });

  it("a batch answer that is not Graph's (no answer for the chain's first item) fails its items with a typed error, without looping", async () => {
    const certs = ensureTestCerts();
    let batchPosts = 0;
    const server = https.createServer({ key: fs.readFileSync(certs.serverKeyPath), cert: fs.readFileSync(certs.serverCertPath) }, (req, res) => {
      req.resume();
      req.on("end", () => {
        if (req.url === "/v1.0/$batch") batchPosts++;
        // A lone request is answered; every batch gets an answer without items.
        setTimeout(() => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(req.url === "/v1.0/$batch" ? { responses: [] } : {})), 20);
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    try {
      const g = new GraphClient({ baseUrl: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, tenantId: "t", tokens: { token: async () => "token" }, maxConcurrencyPerMailbox: 1 });
      const write = (i: number) => g.request({ method: "PATCH", url: `/users/u/messages/m${i}`, body: { isRead: true }, mailbox: "u", batchable: true });
      const results = await Promise.allSettled([0, 1, 2, 3].map(write));
      // The first goes alone into the free slot; the other three wait and go as a batch of 3 (its
      // first item failed), then of 2 (the same), and the last is sent alone.
      expect(results.map((r) => (r.status === "rejected" ? (r.reason as ConnectorError).code : "ok"))).toEqual(["ok", "GRAPH_UNAVAILABLE", "GRAPH_UNAVAILABLE", "ok"]);
      expect(batchPosts).toBe(2);
    } finally {
      server.close();
    }
  });
});
