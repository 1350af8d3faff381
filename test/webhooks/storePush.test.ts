import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { startDovecot, type DovecotHandle } from "../harness/dovecot.js";
import { ReplayGuard, verifyStoreNotification, type StoreEvent } from "../../src/webhooks/storeNotifications.js";
import { signFor } from "../../src/security/endpointSecrets.js";
import { isConnectorError } from "../../src/errors.js";

const secret = "s".repeat(20) + "-store-notify-secret-0123456789";
let dc: DovecotHandle;
let server: http.Server;
const received: Array<{ body: string; ts: string | null; sig: string | null }> = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      received.push({ body, ts: req.headers["x-umc-timestamp"] as string ?? null, sig: req.headers["x-umc-signature"] as string ?? null });
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  dc = await startDovecot({ users: { "4711": "pw" }, push: { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/store/notifications`, secret, endpointId: "voice-1" } });
});
afterAll(async () => { await dc?.stop(); server?.close(); });

describe("store notifications", () => {
  it("Dovecot's Lua push signs with HMAC-SHA256 that the connector verifies", async () => {
    await dc.lda("4711", "Subject: vm\r\nMessage-Context: voice-message\r\n\r\nx\r\n");
    await expect.poll(() => received.length, { timeout: 5000 }).toBeGreaterThan(0);
    const got = received[0]!;
    const events: StoreEvent[] = verifyStoreNotification({ keys: { current: secret }, endpointId: "voice-1", body: got.body, timestampHeader: got.ts, signatureHeader: got.sig, nowSeconds: Math.floor(Date.now() / 1000), replay: new ReplayGuard() });
    expect(events[0]).toMatchObject({ event: "MessageNew", user: "4711", mailbox: "INBOX", uid: 1 });
  });

  it("refuses bad signatures, stale timestamps and replays", () => {
    const now = 1_800_000_000;
    const body = JSON.stringify({ events: [{ event: "MessageNew", user: "4711" }] });
    const signStoreNotification = (s: string, t: number, b: string) => signFor(s, "voice-1", "push", t, b);
    const sig = signStoreNotification(secret, now, body);
    const replay = new ReplayGuard();
    const check = (b: string, ts: string | null, s: string | null, at = now) => {
      try { verifyStoreNotification({ keys: { current: secret }, endpointId: "voice-1", body: b, timestampHeader: ts, signatureHeader: s, nowSeconds: at, replay }); return "ok"; }
      catch (e) { return isConnectorError(e) ? `${e.code}: ${e.message}` : "untyped"; }
    };
    expect(check(body, String(now), sig.replace(/.$/, "0"))).toMatch(/^UNAUTHORIZED: bad signature/);
    expect(check(body + " ", String(now), sig)).toMatch(/^UNAUTHORIZED/);
    expect(check(body, String(now), signStoreNotification("other-secret-other-secret-other-secret", now, body))).toMatch(/^UNAUTHORIZED/);
    // The endpoint and the direction are inside the signed text.
    expect(check(body, String(now), signFor(secret, "voice-2", "push", now, body))).toMatch(/^UNAUTHORIZED: bad signature/);
    expect(check(body, String(now), signFor(secret, "voice-1", "callback", now, body))).toMatch(/^UNAUTHORIZED: bad signature/);
    expect(check(body, String(now), sig, now + 301)).toMatch(/outside the allowed window/);
    expect(check(body, null, sig)).toMatch(/^UNAUTHORIZED/);
    expect(check(body, String(now), sig)).toBe("ok");
    // Not taken yet (the handler answered 503, or its sender stopped waiting): the same request
    // again gets through. Once taken (202), it is a replay.
    expect(check(body, String(now), sig)).toBe("ok");
    replay.take("voice-1", sig, now);
    expect(check(body, String(now), sig)).toMatch(/replayed/);
    expect(check(body, String(now), sig, now + 250)).toMatch(/replayed/);
    const bad = "not json";
    expect(check(bad, String(now), signStoreNotification(secret, now, bad))).toMatch(/^BAD_REQUEST/);
  });
});
