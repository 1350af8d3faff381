/**
 * App-only tokens per customer tenant with msal-node (client credentials). One
 * ConfidentialClientApplication per tenant lives for the process, so warm invocations reuse
 * its token cache (shared/reference/graph-facts.md section 7). Credentials: a certificate
 * (production), a federated assertion from the managed identity (production in Azure), or a
 * client secret (dev and test only: src/config.ts refuses secrets in Azure).
 */
import crypto from "node:crypto";
import fs from "node:fs";
import type { ConfidentialClientApplication, Configuration } from "@azure/msal-node";
import { ConnectorError } from "../errors.js";

export type AppCredential =
  | { kind: "certificate"; certPath: string; keyPath?: string }
  | { kind: "assertion"; getAssertion: () => Promise<string> }
  | { kind: "secret"; secret: string };

export interface TokenSource {
  /**
   * An app-only Graph token for the tenant. `fresh` asks Entra ID again past any token kept
   * (consent reads the roles just granted; a kept token carries the roles of its issue).
   */
  token(tenantId: string, opts?: { fresh?: boolean }): Promise<string>;
}

export const GRAPH_SCOPE = "https://graph.microsoft.com/.default";
/** Token clients kept per process: far above one deployment's tenants, and a bound on what
 *  any caller that makes the app ask for tokens (consent) can make it hold. */
export const MAX_TENANT_CLIENTS = 2000;
/**
 * A kept token is used until this long before it expires: msal-node's own renewal offset
 * (tokenRenewalOffsetSeconds, 300 s), so a request never leaves with a token about to lapse.
 */
const RENEW_BEFORE_EXPIRY_MS = 300_000;

/** One tenant's token client, with the token it last gave and the request under way. */
interface TenantTokens {
  app: ConfidentialClientApplication;
  kept?: { accessToken: string; renewAt: number };
  pending?: Promise<string>;
}

/**
 * Each Graph request asks for a token (twice: src/graph/client.ts and the client's auth
 * middleware). msal-node answers from its cache, but its lookup costs about 1 ms of CPU
 * (profiled: 1.2 s of a 2,000-message backfill), and it does not join concurrent requests, so
 * a cold worker's first parallel actions each POST to the token endpoint. The token is kept
 * here until shortly before it is due, and one token request per tenant is under way at a time.
 */
export function msalTokenSource(opts: { clientId: string; authorityHost: string; credential: AppCredential }): TokenSource {
  const tenants = new Map<string, TenantTokens>();
  const auth = credentialConfig(opts.credential);
  const isMicrosoft = /(^|\.)login\.microsoftonline\.(com|us)$|(^|\.)login\.partner\.microsoftonline\.cn$/i.test(new URL(opts.authorityHost).hostname);
  // msal-node loads with the first token request, not with the app (cold start).
  const tenantFor = async (tenantId: string): Promise<TenantTokens> => {
    let t = tenants.get(tenantId);
    if (!t) {
      const authority = `${opts.authorityHost.replace(/\/$/, "")}/${tenantId}`;
      const host = new URL(opts.authorityHost).host;
      // Non-Microsoft hosts (the simulator): hand msal the metadata so it makes no discovery calls.
      const metadata: Partial<Configuration["auth"]> = isMicrosoft ? {} : {
        knownAuthorities: [host],
        authorityMetadata: JSON.stringify({ token_endpoint: `${authority}/oauth2/v2.0/token`, authorization_endpoint: `${authority}/oauth2/v2.0/authorize`, issuer: `${authority}/v2.0`, jwks_uri: `${authority}/discovery/v2.0/keys`, end_session_endpoint: `${authority}/oauth2/v2.0/logout` }),
        cloudDiscoveryMetadata: JSON.stringify({ tenant_discovery_endpoint: `${authority}/v2.0/.well-known/openid-configuration`, "api-version": "1.1", metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }] }),
      };
      const { ConfidentialClientApplication } = await import("@azure/msal-node");
      t = tenants.get(tenantId) ?? { app: new ConfidentialClientApplication({ auth: { clientId: opts.clientId, authority, ...metadata, ...auth } }) };
      // Bounded: the least recently used client goes (its caches with it) past MAX_TENANT_CLIENTS.
      if (!tenants.has(tenantId) && tenants.size >= MAX_TENANT_CLIENTS) tenants.delete(tenants.keys().next().value!);
    }
    tenants.delete(tenantId);
    tenants.set(tenantId, t);
    return t;
  };
  const request = async (tenantId: string, t: TenantTokens, fresh: boolean): Promise<string> => {
    try {
      const r = await t.app.acquireTokenByClientCredential({ scopes: [GRAPH_SCOPE], ...(fresh ? { skipCache: true } : {}) });
      if (!r?.accessToken) throw new Error("no access token in the response");
      // Renewed before it expires, or at the refresh time Entra gave (refresh_in), whichever is first.
      t.kept = { accessToken: r.accessToken, renewAt: Math.min((r.expiresOn?.getTime() ?? 0) - RENEW_BEFORE_EXPIRY_MS, r.refreshOn?.getTime() ?? Infinity) };
      return r.accessToken;
    } catch (e) {
      const code = (e as { errorCode?: string }).errorCode ?? "";
      // invalid_client / unauthorized_client / invalid_request: fixing needs an admin (consent, credential).
      const permanent = /invalid_client|unauthorized_client|invalid_request|invalid_scope/.test(code);
      const detail = ((e as { errorMessage?: string }).errorMessage ?? (e as Error).message ?? "").split("\n")[0]!.slice(0, 300);
      throw new ConnectorError("GRAPH_AUTH_FAILED", `token request for tenant ${tenantId} failed: ${code || "network"} ${detail}`, { tenantId, transient: !permanent, cause: e });
    }
  };
  return {
    async token(tenantId, { fresh = false } = {}) {
      const t = await tenantFor(tenantId);
      if (!fresh && t.kept && Date.now() < t.kept.renewAt) return t.kept.accessToken;
      if (fresh) return request(tenantId, t, true);
      t.pending ??= request(tenantId, t, false).finally(() => { t.pending = undefined; });
      return t.pending;
    },
  };
}

function credentialConfig(c: AppCredential): Partial<Configuration["auth"]> {
  switch (c.kind) {
    case "secret": return { clientSecret: c.secret };
    case "assertion": return { clientAssertion: () => c.getAssertion() };
    case "certificate": {
      // One PEM file may hold both the certificate and its private key (Key Vault's export).
      const certPem = fs.readFileSync(c.certPath, "utf8");
      const keyPem = c.keyPath ? fs.readFileSync(c.keyPath, "utf8") : certPem;
      const thumbprintSha256 = new crypto.X509Certificate(certPem).fingerprint256.replace(/:/g, "");
      return { clientCertificate: { thumbprintSha256, privateKey: keyPem } };
    }
  }
}
