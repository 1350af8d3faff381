/**
 * The admin API as it runs in Azure: Entra access tokens of the operator's tenant, checked
 * against the keys the tenant publishes (the simulator plays Entra ID), with the app role.
 */
import crypto from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, APP, TENANT, ADMIN_TOKEN, type World } from "./world.js";

let w: World;
const OTHER_TENANT = "0c0ffee0-0000-4000-8000-0000000000ff";
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");

beforeAll(async () => {
  w = await startWorld({ users: ["4960"], timers: false, quiet: true, env: { UMC_ADMIN_TENANT_ID: TENANT } });
}, 60_000);
afterAll(async () => { await w?.stop(); });

const status = (auth?: string, format = "") => fetch(`${w.host.url}/api/admin/status${format}`, { headers: auth ? { authorization: auth } : {} });
const token = (over: Partial<Parameters<World["sim"]["issueUserToken"]>[0]> = {}) => w.sim.issueUserToken({ tenantId: TENANT, audience: APP, roles: ["Umconnect.Admin"], name: "Operator", ...over });

describe("admin API with Entra tokens", () => {
  it("lets an operator with the app role in (v2.0 and v1.0 audiences), JSON and HTML", async () => {
    const r = await status(`Bearer ${token()}`);
    expect(r.status).toBe(200);
    expect(await r.json()).toHaveProperty("tenants");
    expect((await status(`Bearer ${token({ audience: `api://${APP}`, issuer: `https://sts.windows.net/${TENANT}/` })}`)).status).toBe(200);
    const html = await status(`Bearer ${token()}`, "?format=html");
    expect(html.headers.get("content-type")).toMatch(/text\/html/);
  });

  it("answers 403 (insufficient_scope) to a signed-in user without the role", async () => {
    for (const roles of [[], ["Reader"], undefined]) {
      const r = await status(`Bearer ${token({ roles: roles as string[] | undefined })}`);
      expect(r.status).toBe(403);
      expect(r.headers.get("www-authenticate")).toContain("insufficient_scope");
    }
  });

  it("answers 401 to tokens for another audience, from another tenant, expired, forged or unsigned", async () => {
    const good = token();
    const [h, p] = good.split(".");
    const claims = JSON.parse(Buffer.from(p!, "base64url").toString()) as Record<string, unknown>;
    const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
    const header = JSON.parse(Buffer.from(h!, "base64url").toString()) as Record<string, unknown>;
    const forged = `${h}.${b64({ ...claims, roles: ["Umconnect.Admin", "x"] })}`;
    const cases: Record<string, string> = {
      "Graph audience": token({ audience: "https://graph.microsoft.com" }),
      "another app": token({ audience: crypto.randomUUID() }),
      "another tenant": w.sim.issueUserToken({ tenantId: OTHER_TENANT, audience: APP, roles: ["Umconnect.Admin"] }),
      "issuer of another tenant": token({ issuer: `${w.sim.origin}/${OTHER_TENANT}/v2.0` }),
      "expired": token({ expiresInSeconds: -600 }),
      "claims changed after signing": `${forged}.${good.split(".")[2]}`,
      "signed by another key": `${forged}.${crypto.sign("sha256", Buffer.from(forged), privateKey).toString("base64url")}`,
      "alg none": `${b64({ ...header, alg: "none" })}.${p}.`,
      "HS256 with the public key as secret": (() => { const hs = `${b64({ ...header, alg: "HS256" })}.${p}`; return `${hs}.${crypto.createHmac("sha256", "public").update(hs).digest("base64url")}`; })(),
      "garbage": "a.b.c",
      "local token of another deployment": "x".repeat(40),
    };
    for (const [what, t] of Object.entries(cases)) {
      const r = await status(`Bearer ${t}`);
      expect(r.status, what).toBe(401);
      expect(r.headers.get("www-authenticate"), what).toContain("invalid_token");
    }
    expect((await status()).status).toBe(401);
  });

  it("follows a signing-key rollover (a token with a new kid is checked against the refetched keys)", async () => {
    expect((await status(`Bearer ${token()}`)).status).toBe(200);
    w.sim.rotateSigningKey();
    await new Promise((r) => setTimeout(r, 31_000)); // jose refetches an unknown kid after its 30 s cooldown
    expect((await status(`Bearer ${token()}`)).status).toBe(200);
  }, 60_000);

  it("still takes the local token in the dev host", async () => {
    expect((await status(`Bearer ${ADMIN_TOKEN}`)).status).toBe(200);
  });
});
