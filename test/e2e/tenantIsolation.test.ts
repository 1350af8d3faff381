/**
 * Safe for many tenants (issue 12): each boundary driven through the real HTTP functions, the
 * `umconnect` command and the sync worker against the local world, with two customer tenants
 * (A: the world's Contoso, B: Fabrikam) on one Dovecot. docs/security.md links here.
 */
import fs from "node:fs";
import net from "node:net";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { ReadableStream } from "node:stream/web";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, ENDPOINT, TENANT, APP, ADMIN_TOKEN, type World } from "./world.js";
import { main } from "../../src/cli/main.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { ensureTestCerts } from "../harness/certs.js";
import { functionDefinitions } from "../../functions/registry.js";
import { signFor } from "../../src/security/endpointSecrets.js";
import { isInternalAddress } from "../../src/security/outbound.js";
import { loadConfig } from "../../src/config.js";
import { buildDeps } from "../../src/app/deps.js";
import { loadDirectory } from "../../src/app/endpoints.js";
import { evaluateAlerts } from "../../src/admin/alerts.js";
import { enqueueLinkKinds } from "../../src/app/schedule.js";
import { openVoiceMailbox } from "../../src/imap/voiceMailbox.js";
import { isConnectorError } from "../../src/errors.js";
import { MAX_STORE_BODY_BYTES } from "../../src/webhooks/storeNotifications.js";
import { MAX_NOTIFICATION_BODY_BYTES } from "../../src/webhooks/graphNotifications.js";

const TENANT_B = "0c0ffee0-0000-4000-8000-0000000000b2";
const TENANT_C = "0c0ffee0-0000-4000-8000-0000000000c3";
/** No such tenant at Entra: no token can be issued for it. */
const TENANT_NOWHERE = "0c0ffee0-0000-4000-8000-0000000000d4";
const STORE_SECRET = "s".repeat(8) + "-store-secret-for-tests-0123456789";
const MAX_MESSAGE = 300_000;

let w: World;
let secretsFile = "";
const dir = fs.mkdtempSync("/tmp/umc-tenants-");

type Result = { code: number; stdout: string; stderr: string };
async function umconnect(...args: string[]): Promise<Result> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, (s) => out.push(s), (s) => err.push(s));
  return { code, stdout: out.join("\n"), stderr: err.join("\n") };
}

/** The world's local secrets file, as the dev host's stand-in for Key Vault. */
function editSecrets(f: (j: { endpoints: unknown[]; profiles: unknown[]; secrets: Record<string, string> }) => void): void {
  const j = JSON.parse(fs.readFileSync(secretsFile, "utf8"));
  f(j);
  fs.writeFileSync(secretsFile, JSON.stringify(j), { mode: 0o600 });
  w.deps.reloadDirectory();
}

async function post(path: string, body: string, headers: Record<string, string>): Promise<number> {
  const r = await fetch(`${w.host.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  await r.body?.cancel();
  return r.status;
}
const signedPush = (endpointId: string, secret: string, user: string, ts = Math.floor(Date.now() / 1000), direction: "push" | "callback" = "push") => {
  const body = JSON.stringify({ events: [{ event: "MessageAppend", user, mailbox: "INBOX", uid: Math.floor(Math.random() * 1e9) }] });
  return { body, headers: { "x-umc-timestamp": String(ts), "x-umc-signature": signFor(secret, endpointId, direction, ts, body) } };
};

const inbox = (userId: string) => w.sim.outlook(userId).messages("inbox");
const linkOf = async (voice: string, endpointId = ENDPOINT) => (await w.deps.state.findLinkByVoice(endpointId, voice))!;

/** A TLS receiver that counts connections and requests, answering with `answer`. */
function receiver(answer: (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => void) {
  const certs = ensureTestCerts();
  const seen = { connections: 0, requests: 0 };
  const server = https.createServer({ key: fs.readFileSync(certs.serverKeyPath), cert: fs.readFileSync(certs.serverCertPath) }, (req, res) => { seen.requests++; req.resume(); req.on("end", () => answer(req, res)); });
  server.on("connection", () => seen.connections++);
  return { server, seen, listen: () => new Promise<number>((r) => server.listen(0, "0.0.0.0", () => r((server.address() as AddressInfo).port))) };
}
const stolen = receiver((_q, s) => s.writeHead(200).end());
const redirecting = receiver((_q, s) => s.writeHead(307, { location: `https://127.0.0.1:${(stolen.server.address() as AddressInfo).port}/stolen` }).end());

beforeAll(async () => {
  await stolen.listen();
  const redirectPort = await redirecting.listen();
  w = await startWorld({
    users: ["5101", "5102", "5103", "5201"],
    endpoint: { maxMessageBytes: MAX_MESSAGE },
    env: { UMC_ALERT_WEBHOOK_URL: `https://127.0.0.1:${redirectPort}/hooks/umconnect` },
  });
  Object.assign(process.env, w.env);
  secretsFile = w.env.UMC_SECRETS_FILE!;
  w.sim.addTenant({ tenantId: TENANT_B, apps: [{ clientId: APP, clientSecret: "app-secret-for-tests", roles: ["Mail.ReadWrite", "User.Read.All"] }] });
  w.sim.addTenant({ tenantId: TENANT_C, apps: [{ clientId: APP, clientSecret: "app-secret-for-tests", roles: ["Mail.ReadWrite"] }] });
  await w.deps.state.upsertTenant({ tenantId: TENANT_B, displayName: "Fabrikam", grantedRoles: ["Mail.ReadWrite"], status: "active", consentedAt: new Date().toISOString() });
  for (const u of ["eve", "mallory", "trent"]) w.sim.addUser(TENANT_B, { userPrincipalName: `${u}@fabrikam.test`, proxyAddresses: [`SMTP:${u}@fabrikam.test`] });
  // Tenant B's own voice store (the same Dovecot, its own endpoint and super-user secret).
  editSecrets((j) => { j.secrets["voice-b--master"] = w.dc.master.pass; });
  fs.writeFileSync(`${dir}/voice-b.json`, JSON.stringify({ id: "voice-b", host: w.dc.host, port: w.dc.port, tls: "plaintext", tenantId: TENANT_B, auth: { mode: "master-separator", masterUser: w.dc.master.user, passwordSecret: "voice-b--master" } }));
  const set = await umconnect("endpoint", "set", `${dir}/voice-b.json`);
  expect(set.stderr).toBe("");
}, 90_000);
afterAll(async () => {
  await w?.stop();
  stolen.server.close();
  redirecting.server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("1. every endpoint and profile belongs to a tenant", () => {
  it("refuses a CSV import for tenant B naming tenant A's store, and links nothing", async () => {
    fs.writeFileSync(`${dir}/b.csv`, "voiceMailbox,endpointId,smtp,profileId\r\n5101,voice-1,eve@fabrikam.test,default\r\n");
    const r = await umconnect("import", `${dir}/b.csv`, "--tenant", TENANT_B);
    expect(r.code).toBe(2); // the file is refused: a usage error, nothing changed
    expect(r.stderr).toContain(`line 2: endpoint voice-1 belongs to tenant ${TENANT}, not to tenant ${TENANT_B}`);
    expect(await w.deps.state.findLinkByVoice(ENDPOINT, "5101")).toBeUndefined();
  });

  it("refuses `umconnect link add` across tenants, and links within one", async () => {
    const across = await umconnect("link", "add", "5101", "--endpoint", "voice-1", "--smtp", "eve@fabrikam.test", "--tenant", TENANT_B);
    expect(across.code).toBe(1);
    expect(across.stderr).toContain("endpoint voice-1 belongs to tenant");
    const own = await umconnect("link", "add", "5201", "--endpoint", "voice-b", "--smtp", "eve@fabrikam.test", "--tenant", TENANT_B, "--json");
    expect(own.code).toBe(0);
    expect(JSON.parse(own.stdout)).toMatchObject({ tenantId: TENANT_B, endpointId: "voice-b", voiceMailbox: "5201" });
  });

  it("refuses at run time a link row that crosses tenants: nothing of A's store reaches B's Outlook", async () => {
    // A row written around the admin checks (an old import, a hand-edited table).
    const mallory = w.sim.addUser(TENANT_B, { userPrincipalName: "mallory2@fabrikam.test", proxyAddresses: ["SMTP:mallory2@fabrikam.test"] });
    await w.dc.lda("5102", avayaVoiceMessage({ id: "a-private-1" }));
    const link = await w.deps.state.createLink({ linkId: "L-cross", tenantId: TENANT_B, endpointId: ENDPOINT, voiceMailbox: "5102", userId: mallory.id, upn: "mallory2@fabrikam.test", profileId: "default", state: "enabled" });
    await enqueueLinkKinds(w.deps, link, "admin");
    await expect.poll(async () => (await w.deps.state.getLink("L-cross"))?.lastError?.code, { timeout: 20_000 }).toBe("TENANT_BOUNDARY");
    // The run had every chance to copy: give it a moment more.
    await new Promise((r) => setTimeout(r, 1000));
    expect(inbox(mallory.id)).toHaveLength(0);
    const status = await (await fetch(`${w.host.url}/api/admin/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json() as { alerts: Array<{ linkId?: string; code: string; severity: string }> };
    expect(status.alerts).toContainEqual(expect.objectContaining({ linkId: "L-cross", code: "TENANT_BOUNDARY", severity: "critical" }));
    await w.deps.state.deleteLink("L-cross");
  });

  it("migration: a stored endpoint without an owner is refused at run time until the operator assigns one, then syncs with nothing lost", async () => {
    // As stored before ownership existed: no tenantId, no shared mark.
    editSecrets((j) => { j.secrets["voice-old--master"] = w.dc.master.pass; });
    const legacy = { id: "voice-old", host: w.dc.host, port: w.dc.port, tls: "plaintext", maxConnections: 4, auth: { mode: "master-separator", masterUser: w.dc.master.user, passwordSecret: "voice-old--master" } };
    await w.deps.state.putConfig("endpoint", "voice-old", legacy);
    w.deps.reloadDirectory();
    expect((await umconnect("endpoints", "--json")).stdout).toContain('"owner": "no owner"');
    const trent = w.sim.addUser(TENANT, { userPrincipalName: "trent@contoso.test", proxyAddresses: ["SMTP:trent@contoso.test"] });
    await w.dc.lda("5103", avayaVoiceMessage({ id: "legacy-1" }));
    const link = await w.deps.state.createLink({ linkId: "L-legacy", tenantId: TENANT, endpointId: "voice-old", voiceMailbox: "5103", userId: trent.id, upn: "trent@contoso.test", profileId: "default", state: "enabled" });
    await enqueueLinkKinds(w.deps, link, "admin");
    await expect.poll(async () => (await w.deps.state.getLink("L-legacy"))?.lastError?.message, { timeout: 20_000 }).toMatch(/endpoint voice-old has no owner yet/);
    expect(inbox(trent.id)).toHaveLength(0);
    // Without an owner, `endpoint set` refuses too; with one, the run goes ahead.
    fs.writeFileSync(`${dir}/voice-old.json`, JSON.stringify(legacy));
    expect((await umconnect("endpoint", "set", `${dir}/voice-old.json`)).stderr).toMatch(/every endpoint belongs to one customer tenant/);
    fs.writeFileSync(`${dir}/voice-old.json`, JSON.stringify({ ...legacy, tenantId: TENANT }));
    expect((await umconnect("endpoint", "set", `${dir}/voice-old.json`)).code).toBe(0);
    w.deps.reloadDirectory(); // the host's instance within a minute (the CLI is another process)
    await umconnect("resync", "L-legacy");
    await expect.poll(() => inbox(trent.id).length, { timeout: 30_000 }).toBe(1);
    // And an owner cannot be changed under links of another tenant.
    fs.writeFileSync(`${dir}/voice-old.json`, JSON.stringify({ ...legacy, tenantId: TENANT_B }));
    expect((await umconnect("endpoint", "set", `${dir}/voice-old.json`)).stderr).toMatch(/link\(s\) of other tenants use endpoint voice-old/);
  }, 90_000);

  it("profiles too: a profile of tenant B cannot be used by a link of tenant A", async () => {
    fs.writeFileSync(`${dir}/p.json`, JSON.stringify({ id: "fabrikam-voice", displayName: "Fabrikam", tenantId: TENANT_B }));
    expect((await umconnect("profile", "set", `${dir}/p.json`)).code).toBe(0);
    w.sim.addUser(TENANT, { userPrincipalName: "peggy@contoso.test", proxyAddresses: ["SMTP:peggy@contoso.test"] });
    const r = await umconnect("link", "add", "5103", "--endpoint", "voice-1", "--smtp", "peggy@contoso.test", "--profile", "fabrikam-voice", "--tenant", TENANT);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`profile fabrikam-voice belongs to tenant ${TENANT_B}, not to tenant ${TENANT}`);
  });
});

describe("2. consent is bound to the tenant it was started for", () => {
  const start = async (tenant: string) => {
    const r = await fetch(`${w.host.url}/api/admin/consent/start?tenant=${tenant}`, { redirect: "manual" });
    return { status: r.status, state: r.status === 302 ? new URL(r.headers.get("location")!).searchParams.get("state")! : undefined };
  };
  const callback = async (tenant: string, state: string) => {
    const r = await fetch(`${w.host.url}/api/admin/consent/callback?tenant=${tenant}&admin_consent=True&state=${encodeURIComponent(state)}`);
    return { status: r.status, text: await r.text() };
  };

  it("refuses a callback naming another tenant than the state, and records nothing for it", async () => {
    const { state } = await start(TENANT_B);
    const r = await callback(TENANT_C, state!);
    expect(r.status).toBe(400);
    expect(r.text).toContain("made for another tenant");
    expect(await w.deps.state.getTenant(TENANT_C)).toBeUndefined();
  });

  it("records a tenant only after a token for it was issued", async () => {
    const { state } = await start(TENANT_NOWHERE);
    const r = await callback(TENANT_NOWHERE, state!);
    expect(r.status).toBe(400);
    expect(r.text).toContain("nothing was recorded");
    expect(await w.deps.state.getTenant(TENANT_NOWHERE)).toBeUndefined();
  });

  it("keeps an existing tenant record's fields, changing only the consent", async () => {
    await w.deps.state.upsertTenant({ tenantId: TENANT_B, displayName: "Fabrikam", grantedRoles: [], status: "revoked" });
    const { state } = await start(TENANT_B);
    const r = await callback(TENANT_B, state!);
    expect(r.status).toBe(200);
    expect(await w.deps.state.getTenant(TENANT_B)).toMatchObject({ displayName: "Fabrikam", status: "active", grantedRoles: expect.arrayContaining(["Mail.ReadWrite"]) });
  });

  it("needs the tenant id to start (a domain cannot be compared with what Entra reports)", async () => {
    expect((await start("fabrikam.onmicrosoft.com")).status).toBe(400);
  });
});

describe("3. one signing secret per endpoint, endpoint and direction signed, rotation with overlap", () => {
  // The host's instance picks a rotation up within a minute (the CLI is another process).
  const rotate = async (...args: string[]) => { const r = await umconnect("endpoint", "rotate-secret", "voice-b", ...args, "--json"); w.deps.reloadDirectory(); return JSON.parse(r.stdout); };

  it("creates and rotates an endpoint's secret; both are accepted inside the overlap, the old one not after", async () => {
    const first = await rotate() as { secret: string; secretName: string };
    expect(first.secretName).toBe("voice-b--signing");
    let p = signedPush("voice-b", first.secret, "5201");
    expect(await post("/api/store/notifications/voice-b", p.body, p.headers)).toBe(202);
    const second = await rotate("--overlap-hours", "1") as { secret: string; previousUntil: string };
    expect(Date.parse(second.previousUntil)).toBeGreaterThan(Date.now() + 3500_000);
    p = signedPush("voice-b", second.secret, "5201");
    expect(await post("/api/store/notifications/voice-b", p.body, p.headers)).toBe(202);
    p = signedPush("voice-b", first.secret, "5201");
    expect(await post("/api/store/notifications/voice-b", p.body, p.headers)).toBe(202);
    const third = await rotate("--overlap-hours", "0") as { secret: string };
    p = signedPush("voice-b", second.secret, "5201");
    expect(await post("/api/store/notifications/voice-b", p.body, p.headers)).toBe(401);
    p = signedPush("voice-b", third.secret, "5201");
    expect(await post("/api/store/notifications/voice-b", p.body, p.headers)).toBe(202);
    // The secret is printed once for the voice system, and never logged.
    expect(JSON.stringify(w.log.lines ?? [])).not.toContain(third.secret);
  });

  it("refuses store A's secret, a signature for another endpoint, and a callback signature replayed as a push", async () => {
    // Store A's system signs a push for store B's mailboxes with its own secret.
    let p = signedPush("voice-b", STORE_SECRET, "5201");
    expect(await post("/api/store/notifications/voice-b", p.body, p.headers)).toBe(401);
    // A push store A really sent, replayed against store B's URL.
    p = signedPush("voice-1", STORE_SECRET, "5201");
    expect(await post("/api/store/notifications/voice-b", p.body, p.headers)).toBe(401);
    expect(await post("/api/store/notifications/voice-1", p.body, p.headers)).toBe(202);
    // A signed UC-location callback (the other direction) is no push.
    p = signedPush("voice-1", STORE_SECRET, "5101", undefined, "callback");
    expect(await post("/api/store/notifications/voice-1", p.body, p.headers)).toBe(401);
    // An endpoint without a secret of its own takes no pushes (polling still syncs it).
    p = signedPush("voice-old", STORE_SECRET, "5103");
    expect(await post("/api/store/notifications/voice-old", p.body, p.headers)).toBe(401);
  });
});

describe("4. an endpoint names only its own secrets; no plaintext IMAP in Azure", () => {
  it("refuses at `endpoint set` a password secret outside the endpoint's prefix", async () => {
    fs.writeFileSync(`${dir}/evil.json`, JSON.stringify({ id: "voice-evil", host: "127.0.0.1", port: 1, tls: "plaintext", tenantId: TENANT, auth: { mode: "user-password", passwordSecret: "voice-b--master" } }));
    const r = await umconnect("endpoint", "set", `${dir}/evil.json`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('an endpoint may only name its own secrets: the name must start with "voice-evil--"');
  });

  it("never reads, or sends anywhere, another endpoint's secret named by a row written to the table directly", async () => {
    // A fake IMAP server that records whatever a client sends it.
    let heard = "";
    const fake = net.createServer((s) => { s.write("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"); s.on("data", (d) => { heard += d.toString(); for (const line of d.toString().split("\r\n")) { const tag = line.split(" ")[0]; if (tag && line.length > 2) s.write(`${tag} NO nope\r\n`); } }); });
    await new Promise<void>((r) => fake.listen(0, "127.0.0.1", () => r()));
    await w.deps.state.putConfig("endpoint", "voice-evil", { id: "voice-evil", host: "127.0.0.1", port: (fake.address() as AddressInfo).port, tls: "plaintext", tenantId: TENANT, auth: { mode: "master-separator", masterUser: "x", passwordSecret: "voice-b--master" } });
    w.deps.reloadDirectory();
    const victim = w.sim.addUser(TENANT, { userPrincipalName: "victor@contoso.test", proxyAddresses: ["SMTP:victor@contoso.test"] });
    const link = await w.deps.state.createLink({ linkId: "L-evil", tenantId: TENANT, endpointId: "voice-evil", voiceMailbox: "5199", userId: victim.id, profileId: "default", state: "enabled" });
    await enqueueLinkKinds(w.deps, link, "admin");
    await expect.poll(async () => (await w.deps.state.getLink("L-evil"))?.lastError?.message, { timeout: 20_000 }).toMatch(/refused as configured: auth.passwordSecret: an endpoint may only name its own secrets/);
    expect(heard).not.toContain(w.dc.master.pass);
    expect(heard).toBe("");
    fake.close();
    await w.deps.state.deleteLink("L-evil");
    await w.deps.state.deleteConfig("endpoint", "voice-evil");
    w.deps.reloadDirectory();
  });

  it("refuses plaintext IMAP when UMC_ENVIRONMENT=azure, saying why", async () => {
    const d = await loadDirectory({ stored: { endpoints: [{ id: "voice-z", host: "vm.example.com", port: 143, tls: "plaintext", tenantId: TENANT, auth: { mode: "user-password", passwordSecret: "voice-z--password" } }], profiles: [] }, secrets: { find: async () => "pw-not-read", get: async () => { throw new Error("must not be read"); }, set: async () => undefined }, environment: "azure" });
    expect(d.listEndpoints()[0]!.refused).toMatch(/tls: plaintext IMAP would send the super user's password in clear/);
    expect(() => d.endpoint("voice-z")).toThrow(/refused as configured/);
  });
});

describe("5. message size is checked before the body is fetched", () => {
  it("skips an oversized stored message without fetching it, shows it on the status page, and copies the rest", async () => {
    const { linkId, userId } = await w.link("5101", "alice@contoso.test");
    await w.dc.lda("5101", avayaVoiceMessage({ id: "huge-1", audioSamples: 1_000_000 }));
    await w.dc.lda("5101", avayaVoiceMessage({ id: "small-1" }));
    await enqueueLinkKinds(w.deps, { linkId, profileId: "default" }, "admin");
    await expect.poll(() => inbox(userId).length, { timeout: 30_000 }).toBe(1);
    await expect.poll(async () => (await w.deps.state.getLink(linkId))?.skippedItems, { timeout: 20_000 }).toBe(1);
    const page = await (await fetch(`${w.host.url}/api/admin/status?format=html`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    expect(page).toContain("1 skipped: PAYLOAD_TOO_LARGE");
    const json = await (await fetch(`${w.host.url}/api/admin/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json() as { links: Array<{ linkId: string; skipped: Array<{ code: string; message: string }> }> };
    expect(json.links.find((l) => l.linkId === linkId)!.skipped[0]).toMatchObject({ code: "PAYLOAD_TOO_LARGE", message: expect.stringMatching(/^too large: message UID \d+ has \d+ bytes, the limit is 300000$/) });
  });

  it("reads the size, not the body: under 64 KiB cross the wire for a 2 MB item", async () => {
    const endpoint = (await w.deps.directory()).endpoint(ENDPOINT);
    const s = await openVoiceMailbox(endpoint, "5101", { folder: "INBOX", removal: { mode: "expunge" }, maxMessageBytes: MAX_MESSAGE });
    try {
      const uids = [...(await s.changes(undefined)).changed].map((c) => c.uid).sort((a, b) => a - b);
      const stats = (s.client as unknown as { stats(reset?: boolean): { received: number } });
      stats.stats(true);
      const e = await s.fetchSource(uids[0]!).catch((x: unknown) => x);
      expect(isConnectorError(e, "PAYLOAD_TOO_LARGE")).toBe(true);
      expect(stats.stats().received).toBeLessThan(64 * 1024);
    } finally {
      await s.close();
    }
  });
});

describe("6. outgoing calls: no redirects, no internal addresses", () => {
  it("does not follow the alert webhook's redirect", async () => {
    await evaluateAlerts(w.deps);
    expect(redirecting.seen.requests).toBeGreaterThan(0);
    expect(stolen.seen.connections).toBe(0);
  });

  it("refuses an address that is internal after resolution (lab allow-list aside)", async () => {
    const port = (stolen.server.address() as AddressInfo).port;
    const deps = buildDeps(loadConfig({ ...w.env, UMC_ALERT_WEBHOOK_URL: `https://127.0.0.2:${port}/x` }), w.log);
    await evaluateAlerts(deps);
    expect(stolen.seen.connections).toBe(0);
    for (const a of ["169.254.169.254", "10.1.2.3", "192.168.0.1", "172.16.5.5", "100.64.0.1", "::1", "fe80::1", "fd00:ec2::254", "::ffff:127.0.0.1", "0.0.0.0"]) expect(isInternalAddress(a), a).toBe(true);
    for (const a of ["20.190.160.1", "2603:1030::1"]) expect(isInternalAddress(a), a).toBe(false);
  });
});

describe("8. HTTP bodies are bounded before they are in memory, on every HTTP function", () => {
  /** A request as the Functions runtime hands it over with HTTP streaming: the body is a stream. */
  function streamingRequest(method: string, route: string, total: number, contentLength?: number) {
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) { if (pulled >= total) { c.close(); return; } const n = Math.min(64 * 1024, total - pulled); pulled += n; c.enqueue(new Uint8Array(n).fill(0x7b)); },
    });
    const headers = new Headers(contentLength === undefined ? {} : { "content-length": String(contentLength) });
    const url = `${w.host.url}/api/${route.replace("{endpointId}", ENDPOINT)}`;
    const req = {
      method, url, headers, body, params: { endpointId: ENDPOINT }, query: new URL(url).searchParams, user: null, bodyUsed: false,
      text: async () => { let s = ""; const r = body.getReader(); for (;;) { const x = await r.read(); if (x.done) return s; s += Buffer.from(x.value).toString(); } },
    };
    return { req, pulled: () => pulled };
  }

  it("declares each route's limit as the code that parses its body has it", () => {
    const limit = (name: string) => (functionDefinitions.find((d) => d.name === name)!.trigger as { maxBodyBytes: number }).maxBodyBytes;
    expect(limit("storeNotifications")).toBe(MAX_STORE_BODY_BYTES);
    expect(limit("graphNotifications")).toBe(MAX_NOTIFICATION_BODY_BYTES);
    expect(limit("graphLifecycle")).toBe(MAX_NOTIFICATION_BODY_BYTES);
  });

  it("answers 413 while reading (no Content-Length) and on Content-Length alone, for each route", async () => {
    for (const d of functionDefinitions) {
      if (d.trigger.kind !== "http") continue;
      const limit = d.trigger.maxBodyBytes;
      const method = d.trigger.methods[0]!;
      const streamed = streamingRequest(method, d.trigger.route, 8 * 1024 * 1024);
      const res = await (d.handler as (r: unknown, c: unknown) => Promise<{ status?: number }>)(streamed.req, { log: () => undefined, error: () => undefined, warn: () => undefined });
      expect(res.status, d.name).toBe(413);
      expect(streamed.pulled(), d.name).toBeLessThanOrEqual(limit + 128 * 1024);
      const declared = streamingRequest(method, d.trigger.route, 8 * 1024 * 1024, 1_000_000_000);
      expect((await (d.handler as (r: unknown, c: unknown) => Promise<{ status?: number }>)(declared.req, {})).status, d.name).toBe(413);
      expect(declared.pulled(), d.name).toBeLessThanOrEqual(64 * 1024);
    }
  });
});

describe("9. an unresolved Key Vault reference is refused by name", () => {
  it("names the setting, not the value", () => {
    const ref = "@Microsoft.KeyVault(SecretUri=https://umc-kv.vault.azure.net/secrets/webhook-secret/)";
    let problems: string[] = [];
    try { loadConfig({ ...w.env, UMC_WEBHOOK_SECRET: ref }); } catch (e) { problems = isConnectorError(e) ? e.problems : []; }
    expect(problems).toContainEqual(expect.stringMatching(/^UMC_WEBHOOK_SECRET: the Key Vault reference was not resolved/));
    expect(problems.join(" ")).not.toContain("umc-kv");
  });

  it("refuses the outbound allow-list in Azure", () => {
    expect(() => loadConfig({ UMC_ENVIRONMENT: "azure", UMC_OUTBOUND_ALLOW_HOSTS: "10.0.0.5", UMC_STORAGE_CONNECTION_STRING: "x" })).toThrow(/UMC_OUTBOUND_ALLOW_HOSTS: the allow-list for internal addresses is for labs/);
  });
});

describe("pages and logs", () => {
  it("HTML pages refuse to be framed", async () => {
    for (const r of [await fetch(`${w.host.url}/api/admin/status?format=html`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }), await fetch(`${w.host.url}/api/admin/consent/start`)]) {
      expect(r.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
      expect(r.headers.get("x-frame-options")).toBe("DENY");
      await r.body?.cancel();
    }
  });

  it("logs no secret, password or signature of this suite", () => {
    const lines = JSON.stringify(w.log.lines ?? []);
    for (const s of [STORE_SECRET, w.dc.master.pass, w.env.UMC_WEBHOOK_SECRET!, ADMIN_TOKEN]) expect(lines).not.toContain(s);
    expect(lines).toContain("store.notification.refused");
  });
});

describe("2 (continued). anonymous consent work is bounded", () => {
  // Last: it spends this instance's consent budget for the minute.
  it("answers 429 past the per-instance budget instead of minting states, rows and token requests", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) {
      const r = await fetch(`${w.host.url}/api/admin/consent/start?tenant=0c0ffee0-0000-4000-8000-${String(i).padStart(12, "0")}`, { redirect: "manual" });
      statuses.push(r.status);
      await r.body?.cancel();
    }
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s === 302).length).toBeLessThanOrEqual(30);
  });
});
