/**
 * msalTokenSource (src/graph/auth.ts) against a token endpoint over https that answers as Entra
 * ID's v2.0 client-credentials endpoint does (token_type, expires_in, access_token:
 * https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow#successful-response),
 * numbering the tokens it issues so a test can tell a kept token from a new one.
 *
 * Breaks seen red:
 *  - no kept token (every call asks msal) -> "many requests ask msal once";
 *  - no joined request (each caller asks on its own) -> "a cold worker's parallel first requests make one token request";
 *  - the kept token used until it expires (no renewal offset) -> "a token is renewed five minutes before it expires";
 *  - `fresh` ignored -> "fresh asks Entra ID again".
 */
import fs from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { ConfidentialClientApplication } from "@azure/msal-node";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { msalTokenSource } from "../../src/graph/auth.js";
import { ensureTestCerts } from "../harness/certs.js";

const TENANT = "7d0c0000-0000-4000-8000-0000000000aa";
let server: https.Server;
let base = "";
let issued = 0;

beforeAll(async () => {
  const certs = ensureTestCerts();
  server = https.createServer({ key: fs.readFileSync(certs.serverKeyPath), cert: fs.readFileSync(certs.serverCertPath) }, (req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.method !== "POST" || !/\/oauth2\/v2\.0\/token$/.test(new URL(req.url ?? "/", base).pathname)) return void res.writeHead(404).end();
      issued++;
      // A little latency, as Entra has: concurrent callers overlap.
      setTimeout(() => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token_type: "Bearer", expires_in: 3599, ext_expires_in: 3599, access_token: `token-${issued}` })), 30);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 30_000);
afterAll(() => { server?.close(); });
afterEach(() => { vi.restoreAllMocks(); vi.useRealTimers(); });

const source = () => msalTokenSource({ clientId: "c1ad0000-0000-4000-8000-000000000001", authorityHost: base, credential: { kind: "secret", secret: "test-only-secret" } });

describe("msalTokenSource", () => {
  it("many requests ask msal once: the token is kept until it is due", async () => {
    const tokens = source();
    const asked = vi.spyOn(ConfidentialClientApplication.prototype, "acquireTokenByClientCredential");
    const first = await tokens.token(TENANT);
    for (let i = 0; i < 100; i++) expect(await tokens.token(TENANT)).toBe(first);
    expect(asked).toHaveBeenCalledTimes(1);
  });

  it("a cold worker's parallel first requests make one token request", async () => {
    const tokens = source();
    const before = issued;
    const got = await Promise.all(Array.from({ length: 8 }, () => tokens.token(TENANT)));
    expect(issued - before).toBe(1);
    expect(new Set(got).size).toBe(1);
  });

  it("a token is renewed five minutes before it expires, not after", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    const tokens = source();
    const first = await tokens.token(TENANT);
    // 3,599 s token: at 3,200 s it is still good for 399 s, more than the 300 s offset.
    vi.setSystemTime(Date.now() + 3_200_000);
    expect(await tokens.token(TENANT)).toBe(first);
    // At 3,350 s only 249 s are left: a new token.
    vi.setSystemTime(Date.now() + 150_000);
    const second = await tokens.token(TENANT);
    expect(second).not.toBe(first);
    expect(await tokens.token(TENANT)).toBe(second);
  });

  it("fresh asks Entra ID again (consent reads the roles just granted) and keeps the new token", async () => {
    const tokens = source();
    const first = await tokens.token(TENANT);
    const fresh = await tokens.token(TENANT, { fresh: true });
    expect(fresh).not.toBe(first);
    expect(await tokens.token(TENANT)).toBe(fresh);
  });
});
