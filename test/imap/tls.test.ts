import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fs from "node:fs";
import { startDovecot, type DovecotHandle } from "../harness/dovecot.js";
import { ensureTestCerts } from "../harness/certs.js";
import { connectMailbox, type ImapEndpoint } from "../../src/imap/endpoint.js";
import { isConnectorError } from "../../src/errors.js";

const certs = ensureTestCerts();
let dc: DovecotHandle;
beforeAll(async () => { dc = await startDovecot({ users: { "7001": "pw" }, tls: { keyPath: certs.serverKeyPath, certPath: certs.serverCertPath } }); });
afterAll(async () => { await dc?.stop(); });

const endpoint = (caBundle?: string): ImapEndpoint => ({ id: `tls-${Math.random()}`, host: "127.0.0.1", port: dc.port, tls: "implicit", caBundle, maxConnections: 2, auth: { mode: "master-separator", masterUser: dc.master.user, password: dc.master.pass } });

describe("IMAP over TLS", () => {
  it("trusts a store certificate through the endpoint's CA bundle", async () => {
    const { client, release } = await connectMailbox(endpoint(fs.readFileSync(certs.caCertPath, "utf8")), "7001");
    expect(client.secureConnection).toBe(true);
    await release();
  });
  it("refuses a certificate no trusted CA signed, as IMAP_TLS_FAILED", async () => {
    // The app certificate is self-signed and unrelated: trusting it does not make the server trusted.
    const err = await connectMailbox(endpoint(fs.readFileSync(certs.appCertPath, "utf8")), "7001").catch((e) => e);
    expect(isConnectorError(err, "IMAP_TLS_FAILED")).toBe(true);
  });
});
