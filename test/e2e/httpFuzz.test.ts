/**
 * Every HTTP endpoint under hostile input, through the dev host's real listener: oversized and
 * malformed bodies, wrong content types, forged clientState, bad and replayed HMACs, header
 * injection through query values, random methods, paths, headers and bytes. The invariants:
 * no 5xx, nothing enqueued by an unauthenticated request, no attacker-chosen response header,
 * no reflected markup, and the host still serves afterwards.
 */
import https from "node:https";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, ADMIN_TOKEN, type World } from "./world.js";
import { signFor } from "../../src/security/endpointSecrets.js";
import { MAX_HTTP_BODY_BYTES } from "../../src/host/devHost.js";

let w: World;
let linkId = "";
const STORE_SECRET = "s".repeat(8) + "-store-secret-for-tests-0123456789";

interface Res { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** A raw request: node's https client sends what we give it (fetch would refuse some of it). */
function send(method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<Res> {
  const u = new URL(w.host.url);
  return new Promise((resolve, reject) => {
    const req = https.request({ host: u.hostname, port: u.port, method, path, headers: { ...(body !== undefined ? { "content-length": String(Buffer.byteLength(body)) } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    // A dropped connection (EPIPE, ECONNRESET, "socket hang up") is not an answer: it fails the
    // test that sent the request. No test here expects one.
    req.on("error", (e) => reject(new Error(`${method} ${path}: connection dropped instead of an HTTP status (${(e as NodeJS.ErrnoException).code ?? e.message})`, { cause: e })));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function queued(): Promise<number> {
  const p = await w.deps.syncQueue.getProperties();
  return p.approximateMessagesCount ?? 0;
}

const ROUTES = ["/api/graph/notifications", "/api/graph/lifecycle", "/api/store/notifications/voice-1", "/api/store/notifications/nope", "/api/admin/status", "/api/admin/consent/start", "/api/admin/consent/callback", "/api/health", "/api/../api/health", "/api/admin/status/extra", "/"];

beforeAll(async () => {
  // Timers and queue work off: whatever a request enqueues stays countable.
  w = await startWorld({ users: ["4950"], timers: false, queueWorkers: false, quiet: true });
  ({ linkId } = await w.link("4950", "fuzz@contoso.test"));
  await w.deps.syncQueue.clearMessages();
}, 60_000);
afterAll(async () => { await w?.stop(); });

describe("HTTP endpoints under hostile input", () => {
  // Break used: the dev host drops the connection (req.destroy()) instead of answering 413
  // -> this test fails with "connection dropped instead of an HTTP status (EPIPE/ECONNRESET)".
  it("refuses oversized bodies with 413 on every POST route, and keeps serving", async () => {
    const big = Buffer.alloc(MAX_HTTP_BODY_BYTES + 1024, 0x7b);
    for (const route of ["/api/graph/notifications", "/api/graph/lifecycle", "/api/store/notifications/voice-1"]) {
      expect((await send("POST", route, { "content-type": "application/json" }, big)).status).toBe(413);
    }
    expect((await send("GET", "/api/health")).status).toBe(200);
    expect(await queued()).toBe(0);
  });

  it("answers malformed, deeply nested and wrongly typed bodies with 4xx and enqueues nothing", async () => {
    const bodies = ["", "not json", "{", "[]", "null", "{\"value\": 5}", "{\"value\": [null, 1, \"x\"]}", "[".repeat(200_000), "{\"value\":[".repeat(50_000), "<xml/>", "\u0000\u0001\u0002"];
    for (const route of ["/api/graph/notifications", "/api/graph/lifecycle"]) {
      for (const body of bodies) {
        for (const type of ["application/json", "text/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]) {
          const r = await send("POST", route, { "content-type": type }, body);
          expect(r.status, `${route} ${type} ${body.slice(0, 20)}`).toBeGreaterThanOrEqual(200);
          expect(r.status, `${route} ${type} ${body.slice(0, 20)}`).toBeLessThan(500);
        }
      }
    }
    expect(await queued()).toBe(0);
  });

  it("ignores notifications with a forged clientState (202, logged, nothing enqueued)", async () => {
    const n = (clientState: string | null) => JSON.stringify({ value: [{ subscriptionId: "s-1", clientState, changeType: "updated", resource: "Users/x/Messages/y", tenantId: "t", subscriptionExpirationDateTime: new Date().toISOString() }] });
    for (const cs of [null, "", "guess", `${linkId}|voicemail.forged`, "x".repeat(10_000)]) {
      const r = await send("POST", "/api/graph/notifications", { "content-type": "application/json" }, n(cs));
      expect(r.status).toBe(202);
    }
    const life = JSON.stringify({ value: [{ subscriptionId: "s-1", clientState: "guess", lifecycleEvent: "subscriptionRemoved", tenantId: "t" }] });
    expect((await send("POST", "/api/graph/lifecycle", { "content-type": "application/json" }, life)).status).toBe(202);
    expect(await queued()).toBe(0);
  });

  it("refuses store notifications with a bad, stale or replayed HMAC and accepts a fresh signed one once", async () => {
    const body = JSON.stringify({ events: [{ user: "4950", mailbox: "INBOX", event: "MessageNew" }] });
    const now = Math.floor(Date.now() / 1000);
    const sign = (t: number, b = body) => ({ timestamp: String(t), signature: signFor(STORE_SECRET, "voice-1", "push", t, b) });
    const good = sign(now);
    const post = (h: Record<string, string>, b = body) => send("POST", "/api/store/notifications/voice-1", { "content-type": "application/json", ...h }, b);
    expect((await post({})).status).toBe(401);
    expect((await post({ "x-umc-timestamp": String(now), "x-umc-signature": "sha256=" + "0".repeat(64) })).status).toBe(401);
    expect((await post({ "x-umc-timestamp": String(now), "x-umc-signature": good.signature }, body + " "))).toMatchObject({ status: 401 });
    const stale = sign(now - 3600);
    expect((await post({ "x-umc-timestamp": stale.timestamp, "x-umc-signature": stale.signature })).status).toBe(401);
    expect((await post({ "x-umc-timestamp": "not a number", "x-umc-signature": good.signature })).status).toBe(401);
    expect(await queued()).toBe(0);
    expect((await post({ "x-umc-timestamp": good.timestamp, "x-umc-signature": good.signature })).status).toBe(202);
    expect(await queued()).toBe(1);
    expect((await post({ "x-umc-timestamp": good.timestamp, "x-umc-signature": good.signature })).status).toBe(401); // replayed
    expect(await queued()).toBe(1);
    await w.deps.syncQueue.clearMessages();
  });

  it("holds the tenant bounds: per-endpoint signatures, bodies on routes that take none, consent bound to its tenant (property)", async () => {
    const body = JSON.stringify({ events: [{ user: "4950", mailbox: "INBOX", event: "MessageNew" }] });
    const now = Math.floor(Date.now() / 1000);
    // voice-1's valid signature, sent for any other endpoint id, with any extra signature entries.
    await fc.assert(fc.asyncProperty(fc.string({ minLength: 1, maxLength: 70 }).map((s) => encodeURIComponent(s)), fc.array(fc.string({ maxLength: 90 }).map((s) => s.replace(/[^\x20-\x7e]/g, "")), { maxLength: 20 }), async (endpoint, extra) => {
      fc.pre(endpoint !== "voice-1");
      const sig = [signFor(STORE_SECRET, "voice-1", "push", now, body), ...extra].join(", ");
      const r = await send("POST", `/api/store/notifications/${endpoint}`, { "content-type": "application/json", "x-umc-timestamp": String(now), "x-umc-signature": sig }, body);
      expect([401, 404, 413, 431]).toContain(r.status);
    }), { numRuns: 150 });
    expect(await queued()).toBe(0);
    // Routes that take no body refuse one, before reading it.
    for (const route of ["/api/health", "/api/admin/status", "/api/admin/consent/start?tenant=0c0ffee0-0000-4000-8000-000000000001"]) {
      expect((await send("GET", route, { authorization: `Bearer ${ADMIN_TOKEN}` }, "x".repeat(100))).status, route).toBe(413);
    }
    // A signed consent state for one tenant never records another, whatever Entra's callback claims.
    await fc.assert(fc.asyncProperty(fc.oneof(fc.uuid(), fc.string({ maxLength: 60 })), async (tenant) => {
      const start = await fetch(`${w.host.url}/api/admin/consent/start?tenant=0c0ffee0-0000-4000-8000-0000000000aa`, { redirect: "manual" });
      await start.body?.cancel();
      if (start.status === 429) return; // the per-instance budget is spent: nothing to forge with
      const state = new URL(start.headers.get("location")!).searchParams.get("state")!;
      const r = await send("GET", `/api/admin/consent/callback?tenant=${encodeURIComponent(tenant)}&admin_consent=True&state=${encodeURIComponent(state)}`);
      expect(r.status).toBe(400);
      if (/^[0-9a-f-]{36}$/i.test(tenant)) expect(await w.deps.state.getTenant(tenant.toLowerCase())).toBeUndefined();
    }), { numRuns: 25 });
  }, 120_000);

  it("does not let query values inject headers or markup", async () => {
    const evil = encodeURIComponent("x\r\nX-Injected: 1\r\n\r\n<script>alert(1)</script>");
    for (const path of [
      `/api/admin/consent/start?tenant=${evil}`,
      `/api/admin/consent/callback?state=${evil}&tenant=${evil}&admin_consent=True`,
      `/api/admin/consent/callback?error=${evil}&error_description=${evil}&state=${evil}`,
      `/api/graph/notifications?validationToken=${evil}`,
      `/api/admin/status?format=${evil}`,
    ]) {
      const r = await send(path.includes("graph") ? "POST" : "GET", path);
      expect(r.status, path).toBeLessThan(500);
      expect(r.headers["x-injected"], path).toBeUndefined();
      for (const v of Object.values(r.headers)) expect(String(v), path).not.toMatch(/[\r\n]/);
      // Only the validation echo returns the token (as text/plain with nosniff); no page reflects markup.
      if (r.body.includes("<script>")) expect(r.headers["content-type"], path).toMatch(/^text\/plain/);
    }
  });

  it("answers 401 to the admin API for every malformed or wrong credential", async () => {
    for (const auth of [undefined, "", "Bearer", "Bearer ", `Bearer ${ADMIN_TOKEN}x`, `bearer${ADMIN_TOKEN}`, `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString("base64")}`, "Bearer " + "A".repeat(60_000), `Bearer ${ADMIN_TOKEN.slice(0, -1)}`]) {
      const r = await send("GET", "/api/admin/status", auth === undefined ? {} : { authorization: auth });
      expect([401, 431], String(auth).slice(0, 30)).toContain(r.status); // 431: Node refuses headers over 16 KiB
      expect(r.body).not.toContain("links");
    }
    expect((await send("GET", "/api/admin/status", { authorization: `Bearer ${ADMIN_TOKEN}` })).status).toBe(200);
  });

  it("survives random methods, paths, headers and bodies (property)", async () => {
    const header = fc.record({
      "content-type": fc.constantFrom("application/json", "text/plain", "application/octet-stream", "text/html; charset=utf-7", "application/json; charset=latin1", ""),
      "x-umc-signature": fc.string({ maxLength: 80 }).map((s) => s.replace(/[^\x20-\x7e]/g, "")),
      "x-umc-timestamp": fc.oneof(fc.integer().map(String), fc.constant(String(Math.floor(Date.now() / 1000)))),
      authorization: fc.oneof(fc.constant(""), fc.string({ maxLength: 100 }).map((s) => `Bearer ${s.replace(/[^\x21-\x7e]/g, "")}`)),
    });
    const body = fc.oneof(fc.json(), fc.string({ maxLength: 2000 }), fc.uint8Array({ maxLength: 4000 }).map((b) => Buffer.from(b)));
    const query = fc.dictionary(fc.constantFrom("validationToken", "tenant", "state", "error", "format", "admin_consent", "x"), fc.string({ maxLength: 50 }), { maxKeys: 3 })
      .map((d) => Object.keys(d).length ? "?" + new URLSearchParams(d).toString() : "");
    await fc.assert(fc.asyncProperty(fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"), fc.constantFrom(...ROUTES), query, header, body, async (method, route, q, h, b) => {
      const headers = Object.fromEntries(Object.entries(h).filter(([, v]) => v !== ""));
      const r = await send(method, route + q, headers, method === "GET" || method === "OPTIONS" ? undefined : b);
      expect(r.status).toBeLessThan(500);
      expect(r.headers["x-injected"]).toBeUndefined();
    }), { numRuns: 300 });
    // Random signatures never match: nothing can have been enqueued.
    expect(await queued()).toBe(0);
    expect((await send("GET", "/api/health")).status).toBe(200);
  }, 120_000);
});
