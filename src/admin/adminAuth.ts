/**
 * Who may use the admin API (status page and JSON).
 *
 * In Azure: an Entra access token issued by the operator's own tenant for this app's API
 * (`az account get-access-token --scope api://<client id>/.default`), carrying the app role
 * UMC_ADMIN_ROLE (assigned to admins in Enterprise applications). Checked as the Microsoft
 * identity platform documents for protected APIs: signature against the tenant's published
 * keys (rolled over by kid), issuer, audience (the client id for v2.0 tokens, the App ID URI
 * for v1.0), lifetime, then the role
 * (https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens#validate-tokens).
 * In the dev host: the local token UMC_ADMIN_TOKEN, compared in constant time.
 *
 * No valid credential: 401. A valid token without the role: 403.
 */
import crypto from "node:crypto";
import type { HttpResponseInit } from "@azure/functions";
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from "jose";
import type { Config } from "../config.js";
import { ConnectorError } from "../errors.js";

export type AdminPrincipal =
  | { kind: "local-token" }
  | { kind: "entra"; tenantId: string; objectId: string; name?: string };

export interface AdminAuth {
  authenticate(authorization: string | null): Promise<AdminPrincipal>;
}

/** Entra tokens carry clock skew of a few minutes at most. */
const CLOCK_TOLERANCE_SECONDS = 300;

export function createAdminAuth(config: Config): AdminAuth {
  const localToken = config.secrets.adminToken;
  const tenantId = config.admin.tenantId;
  const clientId = config.identity.clientId;
  const authority = config.identity.authorityHost.replace(/\/$/, "");
  // jose caches the key set and refetches it (at most every 30 s) when a token names an unknown kid.
  const keys = tenantId ? createRemoteJWKSet(new URL(`${authority}/${tenantId}/discovery/v2.0/keys`)) : undefined;

  const unauthorized = (why: string) => new ConnectorError("UNAUTHORIZED", why, { httpStatus: 401 });

  return {
    async authenticate(authorization) {
      const given = authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
      if (!given) throw unauthorized("no bearer token");
      if (localToken && sameSecret(given, localToken)) return { kind: "local-token" };
      if (!keys || !tenantId || !clientId || given.split(".").length !== 3) throw unauthorized("not a valid admin credential");
      let claims: JWTPayload;
      try {
        ({ payload: claims } = await jwtVerify(given, keys, {
          algorithms: ["RS256"],
          issuer: [`${authority}/${tenantId}/v2.0`, `https://sts.windows.net/${tenantId}/`],
          audience: [clientId, `api://${clientId}`],
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          requiredClaims: ["exp", "iat", "tid", "oid"],
        }));
      } catch (e) {
        throw new ConnectorError("UNAUTHORIZED", `admin token refused (${(e as { code?: string }).code ?? "invalid"})`, { httpStatus: 401 });
      }
      if (claims.tid !== tenantId) throw unauthorized("token from another tenant");
      const roles = Array.isArray(claims.roles) ? (claims.roles as unknown[]) : [];
      if (!roles.includes(config.admin.role)) throw new ConnectorError("FORBIDDEN", `the signed-in user lacks the app role ${config.admin.role}`, { httpStatus: 403 });
      return { kind: "entra", tenantId, objectId: String(claims.oid), ...(typeof claims.name === "string" ? { name: claims.name } : {}) };
    },
  };
}

/** The answer to a refused admin request (RFC 6750 section 3.1: invalid_token for no or bad
 *  credentials, insufficient_scope for a missing role). */
export function refusal(e: ConnectorError): HttpResponseInit {
  const error = e.httpStatus === 403 ? "insufficient_scope" : "invalid_token";
  return { status: e.httpStatus, headers: { "www-authenticate": `Bearer error="${error}"` }, jsonBody: { error: e.code } };
}

function sameSecret(given: string, expected: string): boolean {
  const a = crypto.createHash("sha256").update(given).digest();
  const b = crypto.createHash("sha256").update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}
