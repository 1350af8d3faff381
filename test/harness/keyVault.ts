/**
 * A small faithful fake of what the connector uses in Azure to read voice-store secrets:
 *  - the App Service / Functions managed identity endpoint (IDENTITY_ENDPOINT with the
 *    X-IDENTITY-HEADER secret, api-version 2019-08-01):
 *    https://learn.microsoft.com/en-us/azure/app-service/overview-managed-identity#rest-endpoint-reference
 *    GET {IDENTITY_ENDPOINT}?resource=...&api-version=2019-08-01&client_id=... ->
 *    {"access_token","expires_on" (epoch seconds),"resource","token_type":"Bearer","client_id"};
 *    a missing or wrong header is refused (400), an unknown client_id too;
 *  - Key Vault's secret API: GET https://{vault}/secrets/{name}/{version}?api-version=... ->
 *    {"value","id","attributes"} (https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/get-secret/get-secret),
 *    404 {"error":{"code":"SecretNotFound"}} for an unknown name; a request without a valid
 *    bearer token gets the documented challenge, 401 with
 *    WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/{tenant}", resource="https://vault.azure.net"
 *    (https://learn.microsoft.com/en-us/azure/key-vault/general/authentication-requests-and-responses).
 * The vault keeps its real host name shape (<name>.vault.azure.net: the SDK checks the
 * challenge's resource against it); an HTTPS CONNECT proxy (HTTPS_PROXY, honoured by the Azure
 * SDK pipeline) carries requests for that name to the fake, whose certificate for it is signed
 * by the test CA, so TLS verification stays on.
 */
import crypto from "node:crypto";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { AddressInfo } from "node:net";
import type { TestCerts } from "./certs.js";

export interface FakeKeyVault {
  /** The vault URI the app is configured with (https://<name>.vault.azure.net/). */
  vaultUri: string;
  /** Environment the managed identity client reads (Functions sets these). */
  identityEnv: { IDENTITY_ENDPOINT: string; IDENTITY_HEADER: string };
  /** Proxy settings for the test process (the vault's name leads to the fake). */
  proxyEnv: { HTTPS_PROXY: string; NO_PROXY: string };
  secrets: Map<string, string>;
  /** Requests seen, for the test's checks. */
  seen: { tokenRequests: Array<{ resource: string | null; clientId: string | null; headerOk: boolean }>; secretReads: Array<{ name: string; status: number }> };
  stop(): Promise<void>;
}

const VAULT_RESOURCE = "https://vault.azure.net";

/** Starts the fake; `clientId` is the user-assigned identity's client id the app must ask for. */
export async function startFakeKeyVault(certs: TestCerts, opts: { vaultName: string; clientId: string; tenantId: string }): Promise<FakeKeyVault> {
  const host = `${opts.vaultName}.vault.azure.net`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "umc-kv-"));
  // A server certificate for the vault's name, signed by the test CA.
  fs.writeFileSync(path.join(dir, "kv.ext"), `subjectAltName=DNS:${host}\nextendedKeyUsage=serverAuth\n`);
  const run = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "kv.key", "-out", "kv.csr", "-subj", `/CN=${host}`]);
  run(["x509", "-req", "-in", "kv.csr", "-CA", certs.caCertPath, "-CAkey", path.join(certs.dir, "ca.key"), "-CAcreateserial", "-CAserial", path.join(dir, "ca.srl"), "-out", "kv.crt", "-days", "2", "-extfile", "kv.ext"]);

  const identityHeader = crypto.randomBytes(16).toString("hex");
  const issued = new Map<string, { resource: string; expires: number }>();
  const secrets = new Map<string, string>();
  const seen: FakeKeyVault["seen"] = { tokenRequests: [], secretReads: [] };
  const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers }).end(JSON.stringify(body));

  // ---- managed identity endpoint (http on loopback, like the Functions host's) ----------------
  const identity = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const headerOk = req.headers["x-identity-header"] === identityHeader;
    const resource = url.searchParams.get("resource");
    const clientId = url.searchParams.get("client_id");
    seen.tokenRequests.push({ resource, clientId, headerOk });
    if (!headerOk) return json(res, 400, { statusCode: 400, message: "The request is missing the X-IDENTITY-HEADER header or it is wrong." });
    if (url.searchParams.get("api-version") !== "2019-08-01" || !resource) return json(res, 400, { statusCode: 400, message: "api-version 2019-08-01 and resource are required" });
    if (clientId !== opts.clientId) return json(res, 400, { statusCode: 400, message: "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId." });
    const token = crypto.randomBytes(24).toString("base64url");
    const expires = Math.floor(Date.now() / 1000) + 3600;
    issued.set(token, { resource: resource.replace(/\/$/, ""), expires });
    json(res, 200, { access_token: token, expires_on: String(expires), resource, token_type: "Bearer", client_id: clientId });
  });

  // ---- Key Vault (https, certificate for <name>.vault.azure.net) -------------------------------
  const vault = https.createServer({ key: fs.readFileSync(path.join(dir, "kv.key")), cert: fs.readFileSync(path.join(dir, "kv.crt")) }, (req, res) => {
    const url = new URL(req.url ?? "/", `https://${host}`);
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1];
    const grant = bearer ? issued.get(bearer) : undefined;
    if (!grant || grant.resource !== VAULT_RESOURCE || grant.expires * 1000 < Date.now()) {
      // The documented challenge: where to get a token, and for which resource.
      return json(res, 401, { error: { code: "Unauthorized", message: "AKV10000: Request is missing a Bearer or PoP token." } },
        { "www-authenticate": `Bearer authorization="https://login.microsoftonline.com/${opts.tenantId}", resource="${VAULT_RESOURCE}"` });
    }
    const m = /^\/secrets\/([0-9A-Za-z-]{1,127})\/?([0-9a-f]{32})?$/.exec(url.pathname);
    if (req.method !== "GET" || !m || !url.searchParams.get("api-version")) return json(res, 400, { error: { code: "BadParameter", message: "unsupported request" } });
    const value = secrets.get(m[1]!);
    seen.secretReads.push({ name: m[1]!, status: value === undefined ? 404 : 200 });
    if (value === undefined) return json(res, 404, { error: { code: "SecretNotFound", message: `A secret with (name/id) ${m[1]} was not found in this key vault.` } });
    const version = "0123456789abcdef0123456789abcdef";
    const at = Math.floor(Date.now() / 1000);
    json(res, 200, { value, id: `https://${host}/secrets/${m[1]}/${version}`, attributes: { enabled: true, created: at, updated: at, recoveryLevel: "Recoverable+Purgeable", recoverableDays: 90 } });
  });

  // ---- CONNECT proxy: <name>.vault.azure.net:443 leads to the fake vault ----------------------
  const proxy = http.createServer((_req, res) => res.writeHead(405).end());
  proxy.on("connect", (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    if (req.url !== `${host}:443`) { client.end("HTTP/1.1 403 Forbidden\r\n\r\n"); return; }
    const upstream = net.connect((vault.address() as AddressInfo).port, "127.0.0.1", () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    const drop = () => { upstream.destroy(); client.destroy(); };
    upstream.on("error", drop);
    client.on("error", drop);
  });

  // Every socket, tunnels included (a CONNECT tunnel leaves the server's own bookkeeping), so stop() ends them.
  const sockets = new Set<net.Socket>();
  const listen = (s: net.Server) => {
    s.on("connection", (c: net.Socket) => { sockets.add(c); c.once("close", () => sockets.delete(c)); });
    return new Promise<number>((r) => s.listen(0, "127.0.0.1", () => r((s.address() as AddressInfo).port)));
  };
  const [identityPort, , proxyPort] = await Promise.all([listen(identity), listen(vault), listen(proxy)]);
  const close = (s: net.Server) => new Promise<void>((r) => { s.close(() => r()); for (const c of sockets) c.destroy(); });
  return {
    vaultUri: `https://${host}/`,
    identityEnv: { IDENTITY_ENDPOINT: `http://127.0.0.1:${identityPort}/msi/token`, IDENTITY_HEADER: identityHeader },
    proxyEnv: { HTTPS_PROXY: `http://127.0.0.1:${proxyPort}`, NO_PROXY: "127.0.0.1,localhost" },
    secrets,
    seen,
    async stop() {
      await Promise.all([close(identity), close(vault), close(proxy)]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
