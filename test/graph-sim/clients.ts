/**
 * The product's own client libraries pointed at the simulator (or a real tenant): msal-node
 * for tokens and @microsoft/microsoft-graph-client for Graph, configured as
 * shared/reference/env-recipes.md sections 5-6 verified (no discovery calls, https only).
 */
import crypto from "node:crypto";
import fs from "node:fs";
import { ConfidentialClientApplication } from "@azure/msal-node";
import { Client } from "@microsoft/microsoft-graph-client";

export function msalFor(origin: string, tenantId: string, clientId: string, credential: { secret: string } | { certPath: string; keyPath: string }) {
  const host = new URL(origin).host;
  const authority = `${origin}/${tenantId}`;
  const metadata = origin.includes("login.microsoftonline.com") ? {} : {
    knownAuthorities: [host],
    authorityMetadata: JSON.stringify({ token_endpoint: `${authority}/oauth2/v2.0/token`, authorization_endpoint: `${authority}/oauth2/v2.0/authorize`, issuer: `${authority}/v2.0`, jwks_uri: `${authority}/discovery/v2.0/keys`, end_session_endpoint: `${authority}/oauth2/v2.0/logout` }),
    cloudDiscoveryMetadata: JSON.stringify({ tenant_discovery_endpoint: `${authority}/v2.0/.well-known/openid-configuration`, "api-version": "1.1", metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }] }),
  };
  const cred = "secret" in credential
    ? { clientSecret: credential.secret }
    : (() => {
        const pem = fs.readFileSync(credential.certPath, "utf8");
        return { clientCertificate: { thumbprintSha256: new crypto.X509Certificate(pem).fingerprint256.replace(/:/g, ""), privateKey: fs.readFileSync(credential.keyPath, "utf8") } };
      })();
  return new ConfidentialClientApplication({ auth: { clientId, authority, ...metadata, ...cred } });
}

export function graphClientFor(graphOrigin: string, cca: ConfidentialClientApplication) {
  const url = new URL(graphOrigin);
  return Client.init({
    baseUrl: graphOrigin,
    customHosts: url.hostname === "graph.microsoft.com" ? undefined : new Set([url.hostname]),
    authProvider: (done) => {
      cca.acquireTokenByClientCredential({ scopes: ["https://graph.microsoft.com/.default"] }).then((r) => done(null, r?.accessToken ?? null), (e: Error) => done(e, null));
    },
  });
}
