/**
 * The admin-consent round trip (https://learn.microsoft.com/en-us/entra/identity-platform/v2-admin-consent):
 * /api/admin/consent/start redirects the customer's admin to Entra's adminconsent URL with a
 * signed, expiring, single-use state; Entra redirects back to /api/admin/consent/callback with
 * `tenant`, `admin_consent=True` and the state, or with `error` and `error_description`
 * (some failures also carry `tenant`, so `error` is checked first). On success the tenant is
 * recorded with the application permissions its token actually carries.
 *
 * Both routes are anonymous (the customer's admin has no account with us), so (issue 12,
 * point 2): the state names the tenant the link was made for and the callback refuses any
 * other; a tenant is recorded active only once a token for it was actually issued, and then
 * only its consent fields change; each instance starts and completes a bounded number of
 * consents a minute, so forged tenant ids cannot make it create token clients, rows or token
 * requests without end.
 */
import type { HttpResponseInit } from "@azure/functions";
import { isConnectorError } from "../errors.js";
import { FixedWindow } from "../security/fixedWindow.js";
import { PAGE_SECURITY_HEADERS } from "../security/pageHeaders.js";
import type { Deps } from "../app/deps.js";
import { ConsentStateError, issueConsentState, verifyConsentState } from "./consentState.js";


/** Anonymous consent starts and callbacks each instance serves a minute. */
export const CONSENT_PER_MINUTE = 30;
const budgets = new WeakMap<Deps, { start: FixedWindow; callback: FixedWindow }>();
const budget = (deps: Deps) => {
  let b = budgets.get(deps);
  if (!b) { b = { start: new FixedWindow(CONSENT_PER_MINUTE, 60_000), callback: new FixedWindow(CONSENT_PER_MINUTE, 60_000) }; budgets.set(deps, b); }
  return b;
};
const busy = (): HttpResponseInit => ({ ...page(429, "Too many consent requests", "<p>Please try again in a minute.</p>"), headers: { ...page(429, "", "").headers, "retry-after": "60" } });
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(status: number, title: string, body: string): HttpResponseInit {
  return {
    status,
    headers: { "content-type": "text/html; charset=utf-8", ...PAGE_SECURITY_HEADERS, "cache-control": "no-store" },
    body: `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>umconnect: ${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;line-height:1.5;color:#222}h1{font-size:1.4rem}.ok{color:#0a6b2d}.bad{color:#a4262c}code{background:#f3f3f3;padding:0 .2rem}</style></head>
<body><h1 class="${status < 400 ? "ok" : "bad"}">${esc(title)}</h1>${body}</body></html>`,
  };
}

/** `operator`: who started it, when the request carried an admin credential. */
export function consentStart(deps: Deps, tenantId: string | null, operator?: string): HttpResponseInit {
  const { publicBaseUrl, secrets, identity } = deps.config;
  if (!publicBaseUrl || !secrets.webhookSecret || !identity.clientId) return page(503, "Consent is not configured", "<p>The connector needs its public URL, app id and signing secret before admins can connect.</p>");
  // The tenant is bound into the state, and Entra reports the consenting tenant by id: a
  // domain could not be compared with it.
  if (!tenantId || !GUID.test(tenantId)) return page(400, "Which tenant?", "<p>Start from the link your provider gave you: it names your tenant by its id (a GUID, shown in the Entra admin center under Overview).</p>");
  if (!budget(deps).start.take()) return busy();
  const tenant = tenantId.toLowerCase();
  const url = new URL(`${identity.authorityHost.replace(/\/$/, "")}/${tenant}/v2.0/adminconsent`);
  url.searchParams.set("client_id", identity.clientId);
  // Application permissions can only be requested through /.default (v2-admin-consent).
  url.searchParams.set("scope", "https://graph.microsoft.com/.default");
  url.searchParams.set("redirect_uri", `${publicBaseUrl}/api/admin/consent/callback`);
  url.searchParams.set("state", issueConsentState(secrets.webhookSecret, Math.floor(Date.now() / 1000), tenant, operator));
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
  if (!budget(deps).callback.take()) return busy();
  let state: Awaited<ReturnType<typeof verifyConsentState>>;
  try {
    state = await verifyConsentState(secret, q.get("state"), Math.floor(Date.now() / 1000), { useOnce: (n, exp) => deps.state.useNonceOnce(n, exp) });
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
  const given = q.get("tenant");
  if (q.get("admin_consent")?.toLowerCase() !== "true" || !given || !GUID.test(given)) {
    return page(400, "umconnect was not connected", "<p>Entra ID did not confirm the consent.</p>");
  }
  const tenantId = given.toLowerCase();
  // The state says which tenant this link was made for; nothing else may be recorded with it.
  if (tenantId !== state.t) {
    deps.log.warn("consent.tenant.mismatch", { expected: state.t, given: tenantId.slice(0, 36) });
    return page(400, "umconnect was not connected", "<p>This consent link was made for another tenant. Ask your provider for a link for your tenant.</p>");
  }
  // The permissions as granted: the roles claim of an app token for that tenant. No token, no
  // record: a callback that merely claims consent changes nothing.
  let roles: string[];
  try {
    roles = rolesOf(await deps.tokens().token(tenantId, { fresh: true }));
  } catch (e) {
    if (!isConnectorError(e)) throw e;
    deps.log.warn("consent.token.failed", { tenantId, code: e.code });
    return page(400, "umconnect is not connected yet", "<p>Entra ID reported the consent, but umconnect could not sign in to your tenant yet (this can take a few minutes after consent). Start again from your link in a few minutes; nothing was recorded.</p>");
  }
  // Only the consent fields change; what the operator recorded (the name) stays.
  const existing = await deps.state.getTenant(tenantId);
  await deps.state.upsertTenant({ ...existing, tenantId, grantedRoles: roles, consentedAt: new Date().toISOString(), status: "active", ...(state.o ? { consentStartedBy: state.o } : {}) });
  deps.log.info("consent.recorded", { tenantId, roles, ...(state.o ? { startedBy: state.o } : {}) });
  return page(200, "umconnect is connected", `<p>Tenant <code>${esc(tenantId)}</code> is connected.</p><p>Granted: ${roles.length ? roles.map((r) => `<code>${esc(r)}</code>`).join(", ") : "no application permissions were visible yet (they can take a few minutes)"}.</p><p>Next: link voice mailboxes to users (docs/deploy.md, "Steps").</p>`);
}

/** Who starts a consent link, when the request carries an admin credential (the route stays open to anyone). */
export async function operatorOf(deps: Deps, authorization: string | null): Promise<string | undefined> {
  if (!authorization) return undefined;
  try {
    const who = await deps.adminAuth().authenticate(authorization);
    return who.kind === "entra" ? who.objectId : "local-token";
  } catch {
    return undefined;
  }
}

/** Reads the roles claim of an access token (no signature check: it came straight from Entra over TLS). */
export function rolesOf(token: string): string[] {
  try {
    const payload = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as { roles?: unknown };
    return Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === "string") : [];
  } catch {
    return [];
  }
}
