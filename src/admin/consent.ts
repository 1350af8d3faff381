/**
 * The admin-consent round trip (https://learn.microsoft.com/en-us/entra/identity-platform/v2-admin-consent):
 * /api/admin/consent/start redirects the customer's admin to Entra's adminconsent URL with a
 * signed, expiring, single-use state; Entra redirects back to /api/admin/consent/callback with
 * `tenant`, `admin_consent=True` and the state, or with `error` and `error_description`
 * (some failures also carry `tenant`, so `error` is checked first). On success the tenant is
 * recorded with the application permissions its token actually carries.
 */
import type { HttpResponseInit } from "@azure/functions";
import { isConnectorError } from "../errors.js";
import type { Deps } from "../app/deps.js";
import { ConsentStateError, issueConsentState, verifyConsentState } from "./consentState.js";

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(status: number, title: string, body: string): HttpResponseInit {
  return {
    status,
    headers: { "content-type": "text/html; charset=utf-8", "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'", "x-content-type-options": "nosniff", "cache-control": "no-store" },
    body: `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>umconnect: ${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;line-height:1.5;color:#222}h1{font-size:1.4rem}.ok{color:#0a6b2d}.bad{color:#a4262c}code{background:#f3f3f3;padding:0 .2rem}</style></head>
<body><h1 class="${status < 400 ? "ok" : "bad"}">${esc(title)}</h1>${body}</body></html>`,
  };
}

export function consentStart(deps: Deps, tenantHint: string | null): HttpResponseInit {
  const { publicBaseUrl, secrets, identity } = deps.config;
  if (!publicBaseUrl || !secrets.webhookSecret || !identity.clientId) return page(503, "Consent is not configured", "<p>The connector needs its public URL, app id and signing secret before admins can connect.</p>");
  const tenant = tenantHint && /^[A-Za-z0-9.-]{1,253}$/.test(tenantHint) ? tenantHint : "organizations";
  const url = new URL(`${identity.authorityHost.replace(/\/$/, "")}/${tenant}/v2.0/adminconsent`);
  url.searchParams.set("client_id", identity.clientId);
  // Application permissions can only be requested through /.default (v2-admin-consent).
  url.searchParams.set("scope", "https://graph.microsoft.com/.default");
  url.searchParams.set("redirect_uri", `${publicBaseUrl}/api/admin/consent/callback`);
  url.searchParams.set("state", issueConsentState(secrets.webhookSecret, Math.floor(Date.now() / 1000), tenantHint ?? undefined));
  return { status: 302, headers: { location: url.toString(), "cache-control": "no-store" } };
}

const ERROR_TEXT: Record<string, string> = {
  access_denied: "The administrator declined, so umconnect was not connected. Nothing was changed in your tenant.",
  consent_required: "Entra ID needs an administrator's consent for this app. Sign in with a Global or Privileged Role Administrator and try again.",
  invalid_request: "Entra ID refused the request. Check that the redirect URI registered for the app matches this connector's address.",
};

export async function consentCallback(deps: Deps, q: URLSearchParams): Promise<HttpResponseInit> {
  const secret = deps.config.secrets.webhookSecret;
  if (!secret) return page(503, "Consent is not configured", "<p>The connector has no signing secret.</p>");
  try {
    await verifyConsentState(secret, q.get("state"), Math.floor(Date.now() / 1000), { useOnce: (n, exp) => deps.state.useNonceOnce(n, exp) });
  } catch (e) {
    if (e instanceof ConsentStateError) {
      const why = e.problem === "replayed" ? "This consent link was already used. Start again from the connector to connect another tenant."
        : e.problem === "expired" ? "This consent link expired (after 15 minutes). Start again from the connector."
        : "This request did not come from a consent link issued by this connector, so it was ignored.";
      deps.log.warn("consent.state.refused", { problem: e.problem });
      return page(400, "Consent link not accepted", `<p>${esc(why)}</p>`);
    }
    throw e;
  }
  const error = q.get("error");
  if (error) {
    deps.log.warn("consent.refused", { error });
    return page(400, "umconnect was not connected", `<p>${esc(ERROR_TEXT[error] ?? "Entra ID reported an error.")}</p><p>Entra said: <code>${esc(error)}</code> ${esc((q.get("error_description") ?? "").slice(0, 300))}</p>`);
  }
  const tenantId = q.get("tenant");
  if (q.get("admin_consent")?.toLowerCase() !== "true" || !tenantId || !/^[0-9a-f-]{36}$/i.test(tenantId)) {
    return page(400, "umconnect was not connected", "<p>Entra ID did not confirm the consent.</p>");
  }
  // The permissions as granted: the roles claim of an app token for that tenant.
  let roles: string[] = [];
  try {
    roles = rolesOf(await deps.tokens().token(tenantId));
  } catch (e) {
    if (!isConnectorError(e)) throw e;
    deps.log.warn("consent.token.failed", { tenantId, code: e.code });
  }
  await deps.state.upsertTenant({ tenantId, grantedRoles: roles, consentedAt: new Date().toISOString(), status: "active" });
  deps.log.info("consent.recorded", { tenantId, roles });
  return page(200, "umconnect is connected", `<p>Tenant <code>${esc(tenantId)}</code> is connected.</p><p>Granted: ${roles.length ? roles.map((r) => `<code>${esc(r)}</code>`).join(", ") : "no application permissions were visible yet (they can take a few minutes)"}.</p><p>Next: link voice mailboxes to users (docs/deploy.md, "Steps").</p>`);
}

/** Reads the roles claim of an access token (no signature check: it came straight from Entra over TLS). */
function rolesOf(token: string): string[] {
  try {
    const payload = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as { roles?: unknown };
    return Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === "string") : [];
  } catch {
    return [];
  }
}
