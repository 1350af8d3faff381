/**
 * The credentials allowed in Azure, end to end through the real trigger path (link -> queue ->
 * syncWorker -> Graph and IMAP), with the function host's deps built from the UMC_* settings:
 *  - the certificate credential: msal-node signs a client assertion with the app's certificate
 *    and the simulator's token endpoint verifies it (signature against the registered
 *    certificate, thumbprint, audience, issuer/subject, lifetime: RFC 7523, Entra's
 *    certificate-credentials page); the app has no client secret registered at all;
 *  - the voice store's password in Key Vault, read with the user-assigned managed identity
 *    (test/harness/keyVault.ts: the Functions identity endpoint and Key Vault's secret API and
 *    challenge, after Microsoft's documented shapes).
 *
 * Breaks used:
 *  - src/graph/auth.ts sends a wrong SHA-256 thumbprint in the assertion header ->
 *    "copies a voice message signing in with the certificate credential ..." fails (no copy:
 *    the token endpoint refuses the assertion);
 *  - src/app/deps.ts builds ManagedIdentityCredential without the client id (system-assigned)
 *    -> "reads the voice store's password from Key Vault ..." fails (the identity endpoint
 *    refuses: no copy).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, TENANT, APP, type World } from "./world.js";
import { ensureTestCerts } from "../harness/certs.js";
import { startFakeKeyVault, type FakeKeyVault } from "../harness/keyVault.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { buildDeps, setDeps } from "../../src/app/deps.js";
import { loadConfig } from "../../src/config.js";
import { enqueueLinkKinds } from "../../src/app/schedule.js";

// The Azure SDK reads NO_PROXY once, when its first pipeline is built: before the world starts
// (the Key Vault test routes only the vault's name through its proxy).
process.env.NO_PROXY = "127.0.0.1,localhost";
const certs = ensureTestCerts();
const MI_CLIENT_ID = "5e1f0000-0000-4000-8000-00000000a11d";
let w: World;
let kv: FakeKeyVault | undefined;
let dir: string;
let appPem = "";
let settings: Record<string, string> = {};

beforeAll(async () => {
  w = await startWorld({ users: ["4701", "4702", "4703"] });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "umc-cred-"));
  // The app registration knows only its certificate: no secret can sign anything in.
  const app = w.sim.tenants.get(TENANT)!.apps.get(APP)!;
  app.certificatePem = fs.readFileSync(certs.appCertPath, "utf8");
  delete app.clientSecret;
  // One PEM with the certificate and its key, as Key Vault exports it (UMC_CLIENT_CERT_PATH).
  appPem = path.join(dir, "app.pem");
  fs.writeFileSync(appPem, fs.readFileSync(certs.appCertPath, "utf8") + fs.readFileSync(certs.appKeyPath, "utf8"), { mode: 0o600 });
  const { UMC_CLIENT_SECRET: _secret, ...rest } = w.env;
  settings = rest;
}, 60_000);
afterAll(async () => {
  await w?.stop();
  await kv?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The function host runs with deps built from these settings from now on. */
function hostSettings(env: Record<string, string>) {
  const deps = buildDeps(loadConfig(env), w.log);
  setDeps(deps);
  return deps;
}

const linkError = async (linkId: string) => (await w.deps.state.getLink(linkId))?.lastError;

describe("credentials allowed in Azure", () => {
  it("copies a voice message signing in with the certificate credential (client assertion verified by the token endpoint)", async () => {
    hostSettings({ ...settings, UMC_CLIENT_CERT_PATH: appPem });
    await w.dc.lda("4701", avayaVoiceMessage({ id: "cert-1" }));
    const { linkId, userId } = await w.link("4701", "cert@contoso.test");
    await expect.poll(() => w.sim.outlook(userId).messages("inbox").length, { timeout: 20_000 }).toBe(1);
    expect(await linkError(linkId)).toBeUndefined();
  });

  it("is refused with a certificate the app registration does not know (AADSTS700027), recorded on the link", async () => {
    // A valid certificate and key, but not the app's: the assertion's signature cannot verify.
    const other = path.join(dir, "other.pem");
    fs.writeFileSync(other, fs.readFileSync(certs.serverCertPath, "utf8") + fs.readFileSync(certs.serverKeyPath, "utf8"), { mode: 0o600 });
    hostSettings({ ...settings, UMC_CLIENT_CERT_PATH: other });
    await w.dc.lda("4702", avayaVoiceMessage({ id: "cert-2" }));
    const { linkId, userId } = await w.link("4702", "stranger@contoso.test");
    await expect.poll(async () => (await linkError(linkId))?.code, { timeout: 20_000 }).toBe("GRAPH_AUTH_FAILED");
    expect((await linkError(linkId))!.message).toMatch(/invalid_client/);
    expect(w.sim.outlook(userId).messages("inbox")).toHaveLength(0);
  });

  it("reads the voice store's password from Key Vault with the managed identity and copies with it", async () => {
    kv = await startFakeKeyVault(certs, { vaultName: "umc-test", clientId: MI_CLIENT_ID, tenantId: TENANT });
    Object.assign(process.env, kv.identityEnv, kv.proxyEnv);
    kv.secrets.set("vault-voice--master", w.dc.master.pass);
    // An endpoint stored in configuration (as the CLI stores it) naming its secret, no password anywhere else.
    await w.deps.state.putConfig("endpoint", "vault-voice", { id: "vault-voice", tenantId: TENANT, host: w.dc.host, port: w.dc.port, tls: "plaintext", maxConnections: 8, auth: { mode: "master-separator", masterUser: w.dc.master.user, passwordSecret: "vault-voice--master" } });
    const { UMC_SECRETS_FILE: _file, ...noFile } = settings;
    const deps = hostSettings({ ...noFile, UMC_CLIENT_CERT_PATH: appPem, UMC_MANAGED_IDENTITY_CLIENT_ID: MI_CLIENT_ID, UMC_KEY_VAULT_URI: kv.vaultUri });
    await w.dc.lda("4703", avayaVoiceMessage({ id: "kv-1" }));
    const user = w.sim.addUser(TENANT, { userPrincipalName: "vault@contoso.test" });
    const linkId = "L-vault";
    await deps.state.createLink({ linkId, tenantId: TENANT, endpointId: "vault-voice", voiceMailbox: "4703", userId: user.id, profileId: "default", state: "enabled" });
    await enqueueLinkKinds(deps, { linkId, profileId: "default" }, "admin");
    // Settled either way: the copy arrived, or the run failed (its error says why).
    await expect.poll(async () => w.sim.outlook(user.id).messages("inbox").length > 0 || (await linkError(linkId)) !== undefined, { timeout: 30_000 }).toBe(true);
    expect(await linkError(linkId), JSON.stringify(kv.seen)).toBeUndefined();
    expect(w.sim.outlook(user.id).messages("inbox")).toHaveLength(1);
    expect(kv.seen.secretReads).toContainEqual({ name: "vault-voice--master", status: 200 });
    expect(kv.seen.tokenRequests.length).toBeGreaterThan(0);
    for (const r of kv.seen.tokenRequests) expect(r).toEqual({ resource: "https://vault.azure.net", clientId: MI_CLIENT_ID, headerOk: true });
  }, 60_000);
});
