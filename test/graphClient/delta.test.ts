/**
 * readDelta (src/graph/delta.ts) through the real GraphClient over https, against a server that
 * answers with scripted pages shaped like Microsoft's documented message delta responses
 * (https://learn.microsoft.com/en-us/graph/api/message-delta, examples 1-3: a page with
 * @odata.nextLink, items with "@removed": {"reason": "changed" | "deleted"}, a last page with
 * @odata.deltaLink). The same item may be replayed within one round
 * (https://learn.microsoft.com/en-us/graph/delta-query-overview): the last word on an id wins.
 *
 * Breaks seen red: the replay rule dropped (a later change not taking an id out of `removed`)
 * -> "the last word on an id wins"; a missing deltaLink accepted as "" -> "a round without a
 * deltaLink is an error".
 */
import fs from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GraphClient } from "../../src/graph/client.js";
import { readDelta } from "../../src/graph/delta.js";
import { ensureTestCerts } from "../harness/certs.js";

let server: https.Server;
let base = "";
let pages: Record<string, unknown> = {};
const asked: string[] = [];

beforeAll(async () => {
  const certs = ensureTestCerts();
  server = https.createServer({ key: fs.readFileSync(certs.serverKeyPath), cert: fs.readFileSync(certs.serverCertPath) }, (req, res) => {
    const path = new URL(req.url!, "https://x").pathname;
    asked.push(`${path} ${/odata\.maxpagesize=\d+/.exec(String(req.headers.prefer))?.[0] ?? "no page size"}`);
    const page = pages[path];
    res.writeHead(page ? 200 : 404, { "content-type": "application/json" }).end(JSON.stringify(page ?? { error: { code: "ErrorItemNotFound", message: "not found" } }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 30_000);
afterAll(() => { server?.close(); });

const graph = () => new GraphClient({ baseUrl: base, tenantId: "t", tokens: { token: async () => "token" }, maxConcurrencyPerMailbox: 4 });
type Msg = { id: string; isRead?: boolean; "@removed"?: { reason: string } };

describe("readDelta", () => {
  it("follows every nextLink to the deltaLink; the last word on an id wins", async () => {
    pages = {
      "/v1.0/users/u/mailFolders/inbox/messages/delta": {
        "@odata.nextLink": `${base}/v1.0/users/u/page2`,
        value: [{ id: "AAMkA", isRead: false }, { id: "AAMkB", "@removed": { reason: "deleted" } }, { id: "AAMkC", isRead: true }],
      },
      "/v1.0/users/u/page2": {
        "@odata.nextLink": `${base}/v1.0/users/u/page3`,
        // Replays: B comes back changed, A is removed, C changes again.
        value: [{ id: "AAMkB", isRead: true }, { id: "AAMkA", "@removed": { reason: "changed" } }, { id: "AAMkC", isRead: false }],
      },
      "/v1.0/users/u/page3": { "@odata.deltaLink": `${base}/v1.0/users/u/delta-next`, value: [{ id: "AAMkD", "@removed": { reason: "deleted" } }] },
    };
    asked.length = 0;
    const r = await readDelta<Msg, { id: string; isRead: boolean }>(graph(), { deltaLink: undefined, firstUrl: "/users/u/mailFolders/inbox/messages/delta", pageSize: 2, mailbox: "u", map: (m) => ({ id: m.id, isRead: m.isRead ?? false }) });
    expect(r.full).toBe(true);
    expect(r.upserted.sort((a, b) => a.id.localeCompare(b.id))).toEqual([{ id: "AAMkB", isRead: true }, { id: "AAMkC", isRead: false }]);
    expect(r.removed.sort()).toEqual(["AAMkA", "AAMkD"]);
    expect(r.deltaLink).toBe(`${base}/v1.0/users/u/delta-next`);
    expect(asked).toEqual(["/v1.0/users/u/mailFolders/inbox/messages/delta odata.maxpagesize=2", "/v1.0/users/u/page2 odata.maxpagesize=2", "/v1.0/users/u/page3 odata.maxpagesize=2"]);
  });

  it("starts from the stored deltaLink when there is one (not a full listing)", async () => {
    pages = { "/v1.0/users/u/delta-next": { "@odata.deltaLink": `${base}/v1.0/users/u/delta-3`, value: [] } };
    const r = await readDelta<Msg, Msg>(graph(), { deltaLink: `${base}/v1.0/users/u/delta-next`, firstUrl: "/never", pageSize: 10, mailbox: "u", map: (m) => m });
    expect(r).toEqual({ full: false, upserted: [], removed: [], deltaLink: `${base}/v1.0/users/u/delta-3` });
  });

  it("a round without a deltaLink is an error", async () => {
    pages = { "/v1.0/broken": { value: [{ id: "AAMkA" }] } };
    await expect(readDelta<Msg, Msg>(graph(), { deltaLink: undefined, firstUrl: "/broken", pageSize: 10, mailbox: "u", map: (m) => m, what: "contact delta" }))
      .rejects.toMatchObject({ code: "GRAPH_REQUEST_FAILED", message: "contact delta ended without a deltaLink" });
  });
});
