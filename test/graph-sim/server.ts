/**
 * The Graph simulator: an https server that answers like Microsoft Graph and Entra ID for the
 * parts the connector uses, each rule citing its documentation (table in README.md).
 */
import { UploadBudget, type UploadBudgetOptions } from "./uploadBudget.js";
import crypto from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { ensureTestCerts, type TestCerts } from "../harness/certs.js";
import { signHs256, signRs256, verifyAssertion, verifyHs256 } from "./jwt.js";
import { makeUser, newChangeKey, newId, resolveFolder, type SimApp, type SimMessage, type SimTenant, type SimUser } from "./model.js";
import { ContactsModel, resolveContactFolder } from "./contacts.js";
import { CalendarModel } from "./calendar.js";
import { MailboxFaults } from "./mailboxFaults.js";
import { canonicalPath, normPropId, ODataError, parseDeltaOptions, parseExpand, parseMessageFilter, parseSelect, parseUserFilter } from "./odata.js";
import { NotificationDelivery } from "./delivery.js";
import { mailboxAnswer } from "./directory.js";
import { groupsRoute } from "./groups.js";

export interface SimOptions {
  port?: number;
  /** Added to every request (benchmarks use 20 ms). */
  latencyMs?: number;
  certs?: TestCerts;
  /** Model time per real time for notification delivery: retries over 4 hours, the slow-endpoint
   *  windows, Graph-fired lifecycle events (tests use 0.01: 4 hours last 144 s). */
  notificationRetryScale?: number;
  /** How long notifications for one URL wait to be sent together in one POST (default 20 ms). */
  notificationBatchMs?: number;
  /** Requests per app+mailbox per 10 minutes (documented: 10,000). */
  requestBudget?: number;
  /** Concurrent requests per app+mailbox (documented: 4). */
  concurrencyLimit?: number;
  /** Upload bytes per mailbox and window (documented: 150 MB per 5 minutes; uploadBudget.ts). */
  uploadBudget?: UploadBudgetOptions;
}

export interface Faults {
  latencyMs: number;
  /** The next N Graph requests answer 503. */
  fail5xxNext: number;
  /** The next N Graph requests answer 429 with this Retry-After. */
  throttleNext: number;
  throttleRetryAfterSeconds: number;
  dropNotificationsNext: number;
  duplicateNotifications: boolean;
  delayNotificationsMs: number;
  /** Hold notifications and deliver them in reverse order when this many are held. */
  reorderNotificationsBatch: number;
  /** The next N attachment upload PUTs answer 503. */
  failUploadsNext: number;
  /** The next N mailbox requests answer only after stallMs (and then do their work, as a
   *  backend that is slow, not down, would: a write lands after the client gave up). */
  stallNext: number;
  stallMs: number;
  /** The longest subscription lifetime Graph accepts here (minutes; 10,080 documented, some
   *  tenants and older pages 4,230): longer requests get 400 naming the limit. */
  subscriptionMaxMinutes: number;
  /** Graph fires reauthorizationRequired for subscriptions expiring within this (ms; 0: never). */
  reauthorizeLeadMs: number;
}

interface Subscription {
  id: string;
  appId: string;
  tenantId: string;
  resource: string;
  kind: "messages" | "events" | "contacts";
  userId: string;
  folderId?: string;
  isReadFilter?: boolean;
  changeType: string[];
  notificationUrl: string;
  lifecycleNotificationUrl?: string;
  clientState?: string;
  expirationDateTime: string;
  includeResourceData: boolean;
  createdAt: number;
  /** A reauthorizationRequired was sent and not yet answered by reauthorize or renew. */
  reauthPending?: boolean;
  lastReauthAt?: number;
}

interface Res { status: number; headers?: Record<string, string>; body?: unknown; text?: string; raw?: Buffer }
interface Ctx { appId: string; tenantId: string; roles: string[]; immutableIds: boolean; prefer: string[] }

const GRAPH_AUDIENCE = "https://graph.microsoft.com";
const OUTLOOK_MAX_MINUTES = 10_080; // without resource data (outlook-change-notifications-overview)
const OUTLOOK_MAX_MINUTES_RICH = 1_440; // with resource data
const MIN_MINUTES = 45; // shorter requests are raised to 45 min (subscription resource doc)
const MAILBOX_SUBSCRIPTION_LIMIT = 1_000; // per mailbox, all applications (outlook-change-notifications-overview)
/** Graph-fired reauthorizationRequired comes again at most this often per subscription (model time). */
const REAUTHORIZE_EVERY_MS = 60 * 60_000;
const INLINE_ATTACHMENT_MAX = 3 * 1024 * 1024; // outlook-large-attachments: under 3 MB inline

export function graphError(status: number, code: string, message: string, extraHeaders: Record<string, string> = {}): Res {
  const date = new Date().toISOString().slice(0, 19);
  return { status, headers: extraHeaders, body: { error: { code, message, innerError: { date, "request-id": crypto.randomUUID(), "client-request-id": crypto.randomUUID() } } } };
}

export class GraphSimulator {
  origin = "";
  readonly tenants = new Map<string, SimTenant>();
  readonly subscriptions = new Map<string, Subscription>();
  readonly faults: Faults = { latencyMs: 0, fail5xxNext: 0, throttleNext: 0, throttleRetryAfterSeconds: 1, dropNotificationsNext: 0, duplicateNotifications: false, delayNotificationsMs: 0, reorderNotificationsBatch: 0, failUploadsNext: 0, stallNext: 0, stallMs: 0, subscriptionMaxMinutes: OUTLOOK_MAX_MINUTES, reauthorizeLeadMs: 0 };
  readonly stats = { requests: 0, throttled: 0, byMailbox: new Map<string, number>(), byRoute: new Map<string, number>(), maxInFlight: new Map<string, number>(), notificationsSent: 0, notificationsFailed: 0, notificationsDropped: 0, batchesSent: 0, slowAnswers: 0, endpointThrottled: 0, lifecycleSent: 0 };
  /** Consent decision the adminconsent endpoint takes (the test plays the admin). */
  consentDecision: "approve" | "deny" = "approve";
  /** The tenant of the admin who signs in at /organizations/v2.0/adminconsent. */
  consentTenant?: string;
  private server?: https.Server;
  private readonly signingKey = crypto.randomBytes(32);
  /** Entra's token signing keys, published at /{tenant}/discovery/v2.0/keys; rotateSigningKey() adds one. */
  private readonly rsaKeys: Array<{ kid: string; privateKey: crypto.KeyObject; publicKey: crypto.KeyObject }> = [];
  private readonly inFlight = new Map<string, number>();
  private readonly budget = new Map<string, { windowStart: number; count: number }>();
  private readonly deltaTokens = new Map<string, { userId: string; folderId: string; seq: number; select?: string; expand?: string; options?: string; known: Set<string> }>();
  private readonly skipTokens = new Map<string, { userId: string; folderId: string; items: Array<{ id: string; removed: boolean }>; endSeq: number; select?: string; expand?: string; pageSize: number; options?: string }>();
  private readonly held: Array<() => void> = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  readonly contactsModel = new ContactsModel(this);
  /** Faults aimed at one mailbox, counted as delivered (mailboxFaults.ts). */
  readonly mailboxFaults = new MailboxFaults();
  readonly calendarModel = new CalendarModel(this);
  readonly delivery: NotificationDelivery;
  private lifecycleTimer?: NodeJS.Timeout;

  readonly uploadBudget: UploadBudget;

  constructor(private readonly options: SimOptions = {}) {
    this.faults.latencyMs = options.latencyMs ?? 0;
    this.delivery = new NotificationDelivery({
      timeScale: options.notificationRetryScale ?? 1, batchWindowMs: options.notificationBatchMs, stats: this.stats, isStopped: () => this.stopped, timers: this.timers,
      // Notifications dropped for a throttled endpoint: Graph tells each subscription "missed".
      onDropped: (_url, subs) => { for (const id of subs) if (this.subscriptions.has(id)) this.fireLifecycle(id, "missed"); },
    });
    this.uploadBudget = new UploadBudget(options.uploadBudget);
  }

  async start(): Promise<this> {
    const certs = this.options.certs ?? ensureTestCerts();
    this.server = https.createServer({ key: fs.readFileSync(certs.serverKeyPath), cert: fs.readFileSync(certs.serverCertPath) }, (req, res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (c: Buffer) => { size += c.length; if (size <= 40 * 1024 * 1024) chunks.push(c); });
      req.on("end", () => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : v;
        const body = size > 40 * 1024 * 1024 ? undefined : Buffer.concat(chunks);
        this.handle(req.method ?? "GET", req.url ?? "/", headers, body).then((r) => this.send(res, r), (e) => this.send(res, graphError(500, "InternalServerError", String(e))));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.options.port ?? 0, "127.0.0.1", () => resolve()));
    this.origin = `https://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
    this.lifecycleTimer = setInterval(() => this.graphFiredLifecycle(), 250);
    this.lifecycleTimer.unref();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.lifecycleTimer);
    for (const t of this.timers) clearTimeout(t);
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private send(res: import("node:http").ServerResponse, r: Res) {
    const headers: Record<string, string> = { ...(r.headers ?? {}) };
    let payload: Buffer | string | undefined;
    if (r.raw) payload = r.raw;
    else if (r.text !== undefined) { payload = r.text; headers["content-type"] ??= "text/plain"; }
    else if (r.body !== undefined) { payload = JSON.stringify(withInnerError(r.body)); headers["content-type"] ??= "application/json; odata.metadata=minimal"; }
    res.writeHead(r.status, headers);
    res.end(payload);
  }

  // ---- entry ------------------------------------------------------------------------------

  async handle(method: string, rawUrl: string, headers: Record<string, string>, body: Buffer | undefined): Promise<Res> {
    const url = new URL(rawUrl, this.origin || "https://127.0.0.1");
    const path = decodeURIComponent(url.pathname);
    if (body === undefined) return graphError(413, "RequestEntityTooLarge", "The request body is too large.");
    if (path.startsWith("/_sim/")) return this.control(method, path, body);
    if (path.startsWith("/_upload/")) return this.uploadChunk(method, path.slice(9), headers, body);
    const tokenPath = path.match(/^\/([^/]+)\/oauth2\/v2\.0\/token$/);
    if (tokenPath && method === "POST") return this.token(tokenPath[1]!, body.toString(), url);
    const oidc = path.match(/^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/);
    if (oidc) return { status: 200, body: this.openidConfiguration(oidc[1]!) };
    const keys = path.match(/^\/([^/]+)\/discovery\/v2\.0\/keys$/);
    if (keys && method === "GET") return { status: 200, body: { keys: this.signingKeys().map((k) => ({ ...k.publicKey.export({ format: "jwk" }), kid: k.kid, kty: "RSA", use: "sig", alg: "RS256" })) } };
    const consent = path.match(/^\/([^/]+)\/v2\.0\/adminconsent$/);
    if (consent) return this.adminConsent(consent[1]!, url);
    if (!path.startsWith("/v1.0/")) return graphError(404, "NotFound", "Resource not found");
    return this.graphRequest(method, canonicalPath(path.slice(5)), url.searchParams, headers, body);
  }

  /** Auth, faults, throttling, then dispatch. Also used for each $batch item. */
  private async graphRequest(method: string, path: string, query: URLSearchParams, headers: Record<string, string>, body: Buffer): Promise<Res> {
    this.stats.requests++;
    const auth = this.authenticate(headers.authorization);
    if ("status" in auth) return auth;
    if (this.faults.fail5xxNext > 0) { this.faults.fail5xxNext--; return graphError(503, "ServiceUnavailable", "The service is temporarily unavailable.", { "Retry-After": "1" }); }
    if (this.faults.throttleNext > 0) {
      this.faults.throttleNext--;
      this.stats.throttled++;
      return graphError(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", { "Retry-After": String(this.faults.throttleRetryAfterSeconds) });
    }
    const routeKey = `${method} ${path.replace(/\/users\/[^/]+/, "/users/{id}").replace(/\/(messages|mailFolders|childFolders|subscriptions|attachments|contacts|contactFolders|events)\/(?!delta\b)[^/$]+/g, "/$1/{id}")}`;
    this.stats.byRoute.set(routeKey, (this.stats.byRoute.get(routeKey) ?? 0) + 1);
    const userRef = path.match(/^\/users\/([^/]+)/)?.[1];
    const user = userRef ? this.findUser(auth.tenantId, userRef) : undefined;
    if (userRef && !user) return graphError(404, "ErrorInvalidUser", `The requested user '${userRef}' is invalid.`);
    const refusal = user && this.mailboxFaults.refusal(user.id);
    if (refusal) {
      if (refusal.status === 429) this.stats.throttled++;
      return refusal.status === 503
        ? graphError(503, "ServiceUnavailable", "The service is temporarily unavailable.", { "Retry-After": "1" })
        : graphError(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", { "Retry-After": String(refusal.retryAfterSeconds) });
    }
    const noMailbox = user && mailboxAnswer(user, path);
    if (noMailbox) return noMailbox;
    // Outlook limits per app + mailbox: 4 concurrent, 10,000 per 10 minutes (throttling-limits#outlook-service-limits).
    const key = user ? `${auth.appId}|${user.id}` : undefined;
    if (key && user) {
      const limit = this.options.concurrencyLimit ?? 4;
      const now = this.inFlight.get(key) ?? 0;
      if (now >= limit) {
        this.stats.throttled++;
        return graphError(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", { "Retry-After": "1" });
      }
      const b = this.budget.get(key) ?? { windowStart: Date.now(), count: 0 };
      if (Date.now() - b.windowStart >= 600_000) { b.windowStart = Date.now(); b.count = 0; }
      if (b.count >= (this.options.requestBudget ?? 10_000)) {
        this.stats.throttled++;
        return graphError(429, "ApplicationThrottled", "Application is over its MailboxRequests limit.", { "Retry-After": String(Math.ceil((b.windowStart + 600_000 - Date.now()) / 1000)) });
      }
      const upload = this.uploadRefused(user.id, method, body);
      if (upload) return upload;
      b.count++;
      this.budget.set(key, b);
      this.inFlight.set(key, now + 1);
      this.stats.maxInFlight.set(user.id, Math.max(this.stats.maxInFlight.get(user.id) ?? 0, now + 1));
      this.stats.byMailbox.set(user.id, (this.stats.byMailbox.get(user.id) ?? 0) + 1);
    }
    // Latency is spent inside the mailbox's concurrency window, as a slow backend would.
    if (this.faults.latencyMs > 0) await new Promise((r) => setTimeout(r, this.faults.latencyMs));
    if (user && this.faults.stallNext > 0) { this.faults.stallNext--; await new Promise((r) => setTimeout(r, this.faults.stallMs)); }
    const delay = user ? this.mailboxFaults.delayMs(user.id) : 0;
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const ctx: Ctx = { ...auth, immutableIds: /IdType="ImmutableId"/i.test(headers.prefer ?? ""), prefer: (headers.prefer ?? "").split(",").map((s) => s.trim()) };
    try {
      return await this.dispatch(method, path, query, headers, body, ctx, user);
    } catch (e) {
      if (e instanceof ODataError) return graphError(400, e.code, e.message);
      if (e instanceof SyntaxError) return graphError(400, "BadRequest", "Unable to read JSON request payload.");
      throw e;
    } finally {
      if (key) this.inFlight.set(key, (this.inFlight.get(key) ?? 1) - 1);
    }
  }

  // ---- Entra ID ---------------------------------------------------------------------------

  private signingKeys() {
    if (!this.rsaKeys.length) this.rotateSigningKey();
    return this.rsaKeys;
  }

  /** A new signing key becomes the current one; the old ones stay published (Entra rolls keys over). */
  rotateSigningKey(): string {
    const { privateKey, publicKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
    const kid = crypto.randomBytes(12).toString("base64url");
    this.rsaKeys.unshift({ kid, privateKey, publicKey });
    return kid;
  }

  /**
   * An access token for an app's own API, as Entra issues it to a signed-in user (say, the
   * Azure CLI: az account get-access-token --scope api://<app>/.default). v2.0 format: the
   * audience is the app's client id, the issuer {authority}/{tenant}/v2.0, app roles assigned
   * to the user in `roles` (https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference).
   */
  issueUserToken(claims: { tenantId: string; audience: string; roles?: string[]; oid?: string; name?: string; expiresInSeconds?: number; issuer?: string }): string {
    const iat = Math.floor(Date.now() / 1000);
    const [key] = this.signingKeys();
    return signRs256({
      aud: claims.audience, iss: claims.issuer ?? `${this.origin}/${claims.tenantId}/v2.0`, iat, nbf: iat, exp: iat + (claims.expiresInSeconds ?? 3600),
      tid: claims.tenantId, oid: claims.oid ?? crypto.randomUUID(), name: claims.name ?? "Admin", ver: "2.0", ...(claims.roles ? { roles: claims.roles } : {}),
    }, key!.privateKey, key!.kid);
  }

  private openidConfiguration(tenant: string) {
    const base = `${this.origin}/${tenant}`;
    return { token_endpoint: `${base}/oauth2/v2.0/token`, authorization_endpoint: `${base}/oauth2/v2.0/authorize`, issuer: `${base}/v2.0`, jwks_uri: `${base}/discovery/v2.0/keys`, end_session_endpoint: `${base}/oauth2/v2.0/logout` };
  }

  /** Client credentials grant (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow). */
  private token(tenantRef: string, form: string, url: URL): Res {
    const p = new URLSearchParams(form);
    const aad = (status: number, error: string, code: number, description: string): Res => ({
      status, body: { error, error_description: `AADSTS${code}: ${description}`, error_codes: [code], timestamp: new Date().toISOString(), trace_id: crypto.randomUUID(), correlation_id: crypto.randomUUID() },
    });
    const tenant = this.tenants.get(tenantRef) ?? [...this.tenants.values()].find((t) => [...t.users.values()].some((u) => u.userPrincipalName.endsWith("@" + tenantRef)));
    if (!tenant) return aad(400, "invalid_request", 90002, `Tenant '${tenantRef}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`);
    if (p.get("grant_type") !== "client_credentials") return aad(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.");
    const clientId = p.get("client_id") ?? "";
    const scope = p.get("scope") ?? "";
    if (!/\/\.default$/.test(scope)) return aad(400, "invalid_scope", 1002012, "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).");
    // The resource must exist: Microsoft Graph by its URI or app id (v2-oauth2-client-creds-grant-flow).
    if (!/^(https:\/\/graph\.microsoft\.com|00000003-0000-0000-c000-000000000000)\/\.default$/i.test(scope)) return aad(400, "invalid_resource", 500011, `The resource principal named ${scope.replace(/\/\.default$/, "")} was not found in the tenant named ${tenant.tenantId}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.`);
    const app = tenant.apps.get(clientId);
    if (!app) return aad(400, "unauthorized_client", 700016, `Application with identifier '${clientId}' was not found in the directory '${tenant.tenantId}'.`);
    const secret = p.get("client_secret");
    const assertion = p.get("client_assertion");
    if (secret !== null) {
      if (!app.clientSecret || secret.length !== app.clientSecret.length || !crypto.timingSafeEqual(Buffer.from(secret), Buffer.from(app.clientSecret))) {
        return aad(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.");
      }
    } else if (assertion !== null) {
      if (p.get("client_assertion_type") !== "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || !app.certificatePem) return aad(401, "invalid_client", 700027, "Client assertion failed signature validation.");
      const v = verifyAssertion(assertion, app.certificatePem);
      const tokenEndpoint = `${this.origin}${url.pathname}`;
      if (!v.ok) return aad(401, "invalid_client", 700027, `Client assertion failed signature validation (${v.reason}).`);
      if (v.payload.aud !== tokenEndpoint || v.payload.iss !== clientId || v.payload.sub !== clientId) return aad(401, "invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter or the audience is wrong.");
      if (typeof v.payload.exp !== "number" || v.payload.exp * 1000 < Date.now()) return aad(401, "invalid_client", 700024, "Client assertion is not within its valid time range.");
    } else {
      return aad(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
    }
    const iat = Math.floor(Date.now() / 1000);
    const access_token = signHs256({ aud: GRAPH_AUDIENCE, iss: `https://sts.windows.net/${tenant.tenantId}/`, iat, nbf: iat, exp: iat + 3599, appid: clientId, tid: tenant.tenantId, roles: tenant.consentGranted ? app.roles : [] }, this.signingKey);
    return { status: 200, body: { token_type: "Bearer", expires_in: 3599, ext_expires_in: 3599, access_token } };
  }

  /** Admin consent endpoint (https://learn.microsoft.com/en-us/entra/identity-platform/v2-admin-consent). */
  private adminConsent(tenantRef: string, url: URL): Res {
    const redirect = url.searchParams.get("redirect_uri");
    const state = url.searchParams.get("state") ?? "";
    if (!redirect || !url.searchParams.get("client_id")) return { status: 400, text: "AADSTS900144: The request body must contain the following parameter: 'client_id' and 'redirect_uri'." };
    // /organizations (or /common): the signing-in admin's own tenant (consentTenant, set by the test).
    const tenant = /^(organizations|common)$/i.test(tenantRef) ? (this.consentTenant ? this.tenants.get(this.consentTenant) : this.tenants.size === 1 ? [...this.tenants.values()][0] : undefined) : this.tenants.get(tenantRef);
    const target = new URL(redirect);
    if (!tenant || this.consentDecision === "deny") {
      target.searchParams.set("error", "access_denied");
      target.searchParams.set("error_description", "AADSTS65004: User declined to consent to access the app.");
    } else {
      tenant.consentGranted = true;
      target.searchParams.set("tenant", tenant.tenantId);
      // The permissions granted come back in `scope` (v2-admin-consent, "Successful response").
      const app = tenant.apps.get(url.searchParams.get("client_id") ?? "");
      target.searchParams.set("scope", (app?.roles ?? []).map((r) => `https://graph.microsoft.com/${r}`).join(" "));
      target.searchParams.set("admin_consent", "True");
    }
    target.searchParams.set("state", state);
    return { status: 302, headers: { location: target.toString() } };
  }

  private authenticate(header: string | undefined): Ctx | Res {
    const m = header?.match(/^Bearer\s+(.+)$/i);
    const claims = m ? verifyHs256(m[1]!, this.signingKey) : undefined;
    if (!claims) return graphError(401, "InvalidAuthenticationToken", "Access token is empty or invalid.");
    if (typeof claims.exp !== "number" || claims.exp * 1000 < Date.now()) return graphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.");
    const tenant = this.tenants.get(String(claims.tid));
    if (!tenant) return graphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid tenant.");
    const app = tenant.apps.get(String(claims.appid));
    // Consent revoked since the token was issued: Graph answers 403 on each call.
    if (!app || !tenant.consentGranted) return graphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.");
    return { appId: app.clientId, tenantId: tenant.tenantId, roles: (claims.roles as string[] | undefined) ?? [], immutableIds: false, prefer: [] };
  }

  private requireRole(ctx: Ctx, ...anyOf: string[]): Res | undefined {
    if (anyOf.some((r) => ctx.roles.includes(r))) return undefined;
    return graphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.");
  }

  findUser(tenantId: string, ref: string): SimUser | undefined {
    const t = this.tenants.get(tenantId);
    if (!t) return undefined;
    const lower = ref.toLowerCase();
    for (const u of t.users.values()) if (u.id === ref || u.userPrincipalName.toLowerCase() === lower) return u;
    return undefined;
  }

  // ---- Graph routes -----------------------------------------------------------------------

  private async dispatch(method: string, path: string, q: URLSearchParams, headers: Record<string, string>, bodyBuf: Buffer, ctx: Ctx, user: SimUser | undefined): Promise<Res> {
    const json = () => (bodyBuf.length ? (JSON.parse(bodyBuf.toString()) as Record<string, unknown>) : {});
    let m: RegExpMatchArray | null;
    if (path === "/$batch" && method === "POST") return this.batch(json(), ctx, headers);
    if (path.startsWith("/subscriptions")) return this.subscriptionsRoute(method, path, json, ctx);
    const group = groupsRoute(this, method, path, q, ctx);
    if (group) return group as Res;
    if (path === "/users" && method === "GET") {
      const denied = this.requireRole(ctx, "User.Read.All", "User.ReadWrite.All", "Directory.Read.All");
      if (denied) return denied;
      const t = this.tenants.get(ctx.tenantId)!;
      let users = [...t.users.values()];
      const filter = q.get("$filter");
      if (filter) {
        const f = parseUserFilter(filter);
        users = users.filter((u) => f.kind === "proxy" ? u.proxyAddresses.some((a) => a.toLowerCase() === f.address.toLowerCase()) : u[f.field].toLowerCase() === f.value.toLowerCase());
      }
      return { status: 200, body: { value: users.map((u) => this.userJson(u, parseSelect(q.get("$select")))) } };
    }
    if (!user) return graphError(404, "NotFound", `Resource not found for the segment '${path.split("/")[1] ?? ""}'.`);
    if ((m = path.match(/^\/users\/[^/]+$/)) && method === "GET") {
      const denied = this.requireRole(ctx, "User.Read.All", "User.ReadWrite.All", "Directory.Read.All");
      return denied ?? { status: 200, body: this.userJson(user, parseSelect(q.get("$select"))) };
    }
    const sub = path.match(/^\/users\/[^/]+(\/.*)$/)?.[1] ?? "";
    if (/^\/(contacts|contactFolders)(\/|$)/.test(sub)) {
      const denied = method === "GET" ? this.requireRole(ctx, "Contacts.Read", "Contacts.ReadWrite") : this.requireRole(ctx, "Contacts.ReadWrite");
      return denied ?? this.contactsModel.route(method, sub, q, json, user, ctx.prefer, { bytes: bodyBuf, contentType: headers["content-type"] ?? "" });
    }
    if (/^\/(calendarView|events)(\/|$)/.test(sub)) {
      const denied = method === "GET" ? this.requireRole(ctx, "Calendars.Read", "Calendars.ReadWrite") : this.requireRole(ctx, "Calendars.ReadWrite");
      return denied ?? this.calendarModel.route(method, sub, q, user, ctx.prefer);
    }
    const mailDenied = method === "GET" ? this.requireRole(ctx, "Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic.All") : this.requireRole(ctx, "Mail.ReadWrite");
    if (mailDenied) return mailDenied;
    if ((m = path.match(/^\/users\/[^/]+\/mailFolders$/i)) && method === "GET") {
      const root = resolveFolder(user, "msgfolderroot")!;
      return { status: 200, body: { value: [...user.folders.values()].filter((f) => f.parentFolderId === root.id).map((f) => this.folderJson(user, f)) } };
    }
    if ((m = path.match(/^\/users\/[^/]+\/mailFolders\/([^/]+)$/i)) && method === "GET") {
      const f = resolveFolder(user, m[1]!);
      return f ? { status: 200, body: this.folderJson(user, f) } : graphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
    }
    if ((m = path.match(/^\/users\/[^/]+\/mailFolders\/([^/]+)\/childFolders$/i))) {
      const parent = resolveFolder(user, m[1]!);
      if (!parent) return graphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
      if (method === "GET") return { status: 200, body: { value: [...user.folders.values()].filter((f) => f.parentFolderId === parent.id).map((f) => this.folderJson(user, f)) } };
      if (method === "POST") {
        const name = String(json().displayName ?? "").trim();
        if (!name) return graphError(400, "ErrorInvalidRequest", "displayName is required.");
        // mailfolder-post-childfolders: a duplicate name is refused with ErrorFolderExists.
        if ([...user.folders.values()].some((f) => f.parentFolderId === parent.id && f.displayName.toLowerCase() === name.toLowerCase())) return graphError(409, "ErrorFolderExists", "A folder with the specified name already exists.");
        const f = { id: newId("AQMkAD"), displayName: name, parentFolderId: parent.id };
        user.folders.set(f.id, f);
        return { status: 201, body: this.folderJson(user, f) };
      }
    }
    if ((m = path.match(/^\/users\/[^/]+\/mailFolders\/([^/]+)\/messages\/delta$/i)) && method === "GET") return this.delta(user, m[1]!, q, ctx);
    if ((m = path.match(/^\/users\/[^/]+(?:\/mailFolders\/([^/]+))?\/messages$/i))) {
      const folder = m[1] ? resolveFolder(user, m[1]) : undefined;
      if (m[1] && !folder) return graphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
      if (method === "POST") return this.createMessage(user, folder ?? resolveFolder(user, "drafts")!, json());
      if (method === "GET") return this.listMessages(user, folder, q);
    }
    if ((m = path.match(/^\/users\/[^/]+(?:\/mailFolders\/[^/]+)?\/messages\/([^/]+)(\/.*)?$/i))) {
      const msg = user.messages.get(m[1]!);
      if (!msg) return graphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
      const rest = m[2] ?? "";
      if (rest === "" && method === "GET") return { status: 200, body: this.messageJson(msg, parseSelect(q.get("$select")), parseExpand(q.get("$expand"))) };
      if (rest === "" && method === "PATCH") return this.patchMessage(user, msg, json());
      if (rest === "" && method === "DELETE") { this.removeMessage(user, msg); return { status: 204 }; }
      if (rest.toLowerCase() === "/permanentdelete" && method === "POST") { this.removeMessage(user, msg); return { status: 204 }; }
      if (rest.toLowerCase() === "/move" && method === "POST") {
        const dest = resolveFolder(user, String(json().destinationId ?? ""));
        if (!dest) return graphError(400, "ErrorInvalidIdMalformed", "Id is malformed.");
        return { status: 201, body: this.messageJson(this.moveMessage(user, msg, dest.id, ctx.immutableIds)) };
      }
      if (rest.toLowerCase() === "/attachments" && method === "GET") return { status: 200, body: { value: msg.attachments.map((a) => attachmentJson(a)) } };
      if ((m = rest.match(/^\/attachments\/([^/]+)(\/\$value)?$/i)) && method === "GET") {
        const a = msg.attachments.find((x) => x.id === m![1]);
        if (!a) return graphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
        return m[2] ? { status: 200, headers: { "content-type": a.contentType }, raw: Buffer.from(a.contentBytes, "base64") } : { status: 200, body: attachmentJson(a) };
      }
      if (rest.toLowerCase() === "/attachments/createuploadsession" && method === "POST") return this.createUploadSession(user, msg, json());
      if (rest.toLowerCase() === "/attachments" && method === "POST") {
        const a = json();
        const bytes = Buffer.from(String(a.contentBytes ?? ""), "base64");
        if (bytes.length >= INLINE_ATTACHMENT_MAX) return graphError(413, "ErrorRequestEntityTooLarge", "The request exceeds the maximum size of 3 MB for attachments added this way; use an upload session.");
        msg.attachments.push({ id: newId("AAMkAtt"), name: String(a.name ?? "attachment"), contentType: String(a.contentType ?? "application/octet-stream"), size: bytes.length, contentBytes: bytes.toString("base64"), isInline: Boolean(a.isInline) });
        this.touch(user, msg, "updated");
        return { status: 201, body: attachmentJson(msg.attachments.at(-1)!) };
      }
    }
    return graphError(400, "BadRequest", `The simulator does not implement ${method} ${path}`);
  }

  private userJson(u: SimUser, select?: Set<string>) {
    const full: Record<string, unknown> = { id: u.id, userPrincipalName: u.userPrincipalName, mail: u.mail, displayName: u.displayName, proxyAddresses: u.proxyAddresses };
    return select ? Object.fromEntries(Object.entries(full).filter(([k]) => k === "id" || select.has(k))) : full;
  }

  private folderJson(user: SimUser, f: { id: string; displayName: string; parentFolderId: string }) {
    const items = [...user.messages.values()].filter((m) => m.folderId === f.id);
    return { id: f.id, displayName: f.displayName, parentFolderId: f.parentFolderId, childFolderCount: [...user.folders.values()].filter((x) => x.parentFolderId === f.id).length, totalItemCount: items.length, unreadItemCount: items.filter((m) => !m.isRead).length };
  }

  messageJson(m: SimMessage, select?: Set<string>, expandIds?: string[]): Record<string, unknown> {
    const full: Record<string, unknown> = {
      "@odata.etag": `W/"${m.changeKey}"`, id: m.id, createdDateTime: m.createdDateTime, lastModifiedDateTime: m.lastModifiedDateTime, changeKey: m.changeKey,
      receivedDateTime: m.receivedDateTime, sentDateTime: m.sentDateTime ?? m.receivedDateTime, hasAttachments: m.attachments.length > 0, subject: m.subject,
      importance: m.importance, parentFolderId: m.folderId, isRead: m.isRead, isDraft: m.isDraft, from: m.from, toRecipients: m.toRecipients,
      ccRecipients: m.ccRecipients ?? [], replyTo: m.replyTo ?? [], body: m.body,
      ...(m.internetMessageId ? { internetMessageId: m.internetMessageId } : {}),
    };
    const out = select ? Object.fromEntries(Object.entries(full).filter(([k]) => k === "id" || k === "@odata.etag" || select.has(k))) : full;
    if (m.odataType) out["@odata.type"] = m.odataType;
    if (expandIds) {
      const wanted = new Set(expandIds.map(normPropId));
      const props = [...m.ext.entries()].filter(([k]) => wanted.has(k)).map(([, v]) => v);
      // PidTagMessageSize (MS-OXPROPS, 0x0E08) is computed by the store for every message,
      // never set by a client: modelled as the body and attachments' sizes plus a header allowance.
      if (wanted.has(MESSAGE_SIZE_PROP) && !m.ext.has(MESSAGE_SIZE_PROP)) {
        const id = expandIds.find((x) => normPropId(x) === MESSAGE_SIZE_PROP)!;
        props.push({ id, value: String(messageSize(m)) });
      }
      // Graph omits the collection when no property matched.
      if (props.length) out.singleValueExtendedProperties = props;
    }
    return out;
  }

  /** Create message (https://learn.microsoft.com/en-us/graph/api/user-post-messages): a draft unless
   * PidTagMessageFlags (0x0E07) is set at creation (MS-OXCMSG 2.2.1.6). */
  private createMessage(user: SimUser, folder: { id: string }, b: Record<string, unknown>): Res {
    const props = Array.isArray(b.singleValueExtendedProperties) ? (b.singleValueExtendedProperties as Array<{ id: string; value: string }>) : [];
    const ext = new Map<string, { id: string; value: string }>();
    for (const p of props) {
      if (typeof p?.id !== "string" || typeof p.value !== "string") return graphError(400, "ErrorInvalidExtendedProperty", "The extended property is invalid.");
      ext.set(normPropId(p.id), { id: p.id, value: p.value });
    }
    const attachments = Array.isArray(b.attachments) ? (b.attachments as Array<Record<string, unknown>>) : [];
    let total = 0;
    const atts = attachments.map((a) => {
      const bytes = Buffer.from(String(a.contentBytes ?? ""), "base64");
      total += bytes.length;
      return { id: newId("AAMkAtt"), name: String(a.name ?? "attachment"), contentType: String(a.contentType ?? "application/octet-stream"), size: bytes.length, contentBytes: bytes.toString("base64"), isInline: Boolean(a.isInline) };
    });
    if (total >= INLINE_ATTACHMENT_MAX) return graphError(413, "ErrorRequestEntityTooLarge", "The total size of the attachments exceeds the 3 MB limit for inline attachments; use an upload session.");
    const flags = ext.get("integer 0x0e07");
    const now = new Date().toISOString();
    const delivery = ext.get("systemtime 0x0e06")?.value;
    const body = (b.body ?? {}) as { contentType?: string; content?: string };
    const msg: SimMessage = {
      id: newId(), folderId: folder.id, changeKey: newChangeKey(), createdDateTime: now, lastModifiedDateTime: now,
      receivedDateTime: delivery ? new Date(delivery).toISOString() : now, isDraft: flags === undefined, isRead: flags ? (Number(flags.value) & 1) === 1 : true,
      subject: String(b.subject ?? ""), importance: (["low", "normal", "high"].includes(String(b.importance)) ? b.importance : "normal") as SimMessage["importance"],
      from: b.from as SimMessage["from"], toRecipients: (b.toRecipients as SimMessage["toRecipients"]) ?? [],
      body: { contentType: body.contentType?.toLowerCase() === "html" ? "html" : "text", content: String(body.content ?? "") }, ext, attachments: atts, seq: 0,
    };
    user.messages.set(msg.id, msg);
    this.touch(user, msg, "created");
    return { status: 201, body: this.messageJson(msg) };
  }

  private listMessages(user: SimUser, folder: { id: string } | undefined, q: URLSearchParams): Res {
    let list = [...user.messages.values()].filter((m) => !folder || m.folderId === folder.id);
    const filter = q.get("$filter");
    if (filter) {
      const f = parseMessageFilter(filter);
      list = list.filter((m) => (f.kind === "isRead" ? m.isRead === f.value : m.ext.get(normPropId(f.id))?.value === f.value));
    }
    list.sort((a, b) => b.receivedDateTime.localeCompare(a.receivedDateTime));
    const top = Math.min(Number(q.get("$top") ?? 10), 1000);
    const skip = Number(q.get("$skip") ?? 0);
    const page = list.slice(skip, skip + top);
    const body: Record<string, unknown> = { value: page.map((m) => this.messageJson(m, parseSelect(q.get("$select")), parseExpand(q.get("$expand")))) };
    if (skip + top < list.length) {
      const next = new URLSearchParams(q);
      next.set("$skip", String(skip + top));
      body["@odata.nextLink"] = `${this.origin}/v1.0/users/${user.id}${folder ? `/mailFolders/${folder.id}` : ""}/messages?${next.toString()}`;
    }
    return { status: 200, body };
  }

  private patchMessage(user: SimUser, msg: SimMessage, b: Record<string, unknown>): Res {
    if ("isRead" in b) msg.isRead = Boolean(b.isRead);
    if (typeof b.subject === "string" && msg.isDraft) msg.subject = b.subject;
    if (typeof b.importance === "string") msg.importance = b.importance as SimMessage["importance"];
    if (Array.isArray(b.singleValueExtendedProperties)) for (const p of b.singleValueExtendedProperties as Array<{ id: string; value: string }>) msg.ext.set(normPropId(p.id), p);
    this.touch(user, msg, "updated");
    return { status: 200, body: this.messageJson(msg) };
  }

  /** Move (message-move): a new item in the destination; the id changes unless immutable ids
   * are requested (https://learn.microsoft.com/en-us/graph/outlook-immutable-id). */
  moveMessage(user: SimUser, msg: SimMessage, folderId: string, immutable: boolean): SimMessage {
    this.tombstone(user, msg);
    user.messages.delete(msg.id);
    const moved: SimMessage = { ...msg, id: immutable ? msg.id : newId(), folderId, changeKey: newChangeKey() };
    user.messages.set(moved.id, moved);
    this.touch(user, moved, "created");
    return moved;
  }

  removeMessage(user: SimUser, msg: SimMessage) {
    this.tombstone(user, msg);
    user.messages.delete(msg.id);
    this.notify(user, msg, "deleted");
  }

  private tombstone(user: SimUser, msg: SimMessage) {
    user.seq++;
    user.tombstones.push({ id: msg.id, folderId: msg.folderId, seq: user.seq });
    this.notify(user, msg, "deleted");
  }

  /** Records a change for delta and notifies subscribers. */
  touch(user: SimUser, msg: SimMessage, change: "created" | "updated") {
    user.seq++;
    msg.seq = user.seq;
    if (change === "updated") msg.changeKey = newChangeKey();
    msg.lastModifiedDateTime = new Date().toISOString();
    this.notify(user, msg, change);
  }

  // ---- large attachments (https://learn.microsoft.com/en-us/graph/outlook-large-attachments) ----

  private readonly uploads = new Map<string, { user: SimUser; messageId: string; name: string; contentType: string; size: number; received: Buffer[]; next: number; expires: number }>();

  /** attachment-createuploadsession: 3 to 150 MB; returns a pre-authenticated upload URL. */
  private createUploadSession(user: SimUser, msg: SimMessage, b: Record<string, unknown>): Res {
    const item = (b.AttachmentItem ?? {}) as { attachmentType?: string; name?: string; size?: number; contentType?: string };
    if (item.attachmentType !== "file" || !item.name || typeof item.size !== "number") return graphError(400, "ErrorInvalidRequest", "AttachmentItem with attachmentType file, name and size is required.");
    if (item.size > 150 * 1024 * 1024) return graphError(413, "ErrorAttachmentSizeLimitExceeded", "The attachment exceeds the 150 MB limit.");
    const token = crypto.randomBytes(18).toString("base64url");
    const expires = Date.now() + 15 * 60_000;
    this.uploads.set(token, { user, messageId: msg.id, name: item.name, contentType: item.contentType ?? "application/octet-stream", size: item.size, received: [], next: 0, expires });
    return { status: 201, body: { uploadUrl: `${this.origin}/_upload/${token}`, expirationDateTime: new Date(expires).toISOString(), nextExpectedRanges: ["0-"] } };
  }

  /** Outlook's upload budget (uploadBudget.ts): a 429 with Retry-After when over it. */
  private uploadRefused(mailbox: string, method: string, body: Buffer): Res | undefined {
    if (!UploadBudget.counts(method)) return undefined;
    const r = this.uploadBudget.charge(mailbox, body.length);
    if (r.ok) return undefined;
    this.stats.throttled++;
    return graphError(429, "ApplicationThrottled", "Application is over its MailboxUploads limit.", { "Retry-After": String(r.retryAfterSeconds) });
  }

  /** PUT byte ranges in order, no Authorization header; the last one answers 201. */
  private uploadChunk(method: string, token: string, headers: Record<string, string>, body: Buffer): Res {
    const up = this.uploads.get(token);
    if (method !== "PUT") return graphError(405, "MethodNotAllowed", "PUT the byte ranges.");
    if (!up || up.expires < Date.now()) return graphError(404, "ItemNotFound", "The upload session was not found or has expired.");
    // "Don't specify an Authorization request header in the PUT call" (outlook-large-attachments).
    if (headers.authorization) return graphError(401, "InvalidAuthenticationToken", "The upload URL is pre-authenticated; do not send an Authorization header.");
    if (this.faults.failUploadsNext > 0) { this.faults.failUploadsNext--; return graphError(503, "ServiceUnavailable", "Upload failed."); }
    const refused = this.uploadRefused(up.user.id, method, body);
    if (refused) return refused;
    const m = (headers["content-range"] ?? "").match(/^bytes (\d+)-(\d+)\/(\d+)$/);
    if (!m || Number(m[3]) !== up.size || Number(m[1]) !== up.next || Number(m[2]) - Number(m[1]) + 1 !== body.length) {
      return graphError(416, "InvalidRange", `Expected the range starting at ${up.next}.`);
    }
    up.received.push(body);
    up.next = Number(m[2]) + 1;
    if (up.next < up.size) return { status: 200, body: { expirationDateTime: new Date(up.expires).toISOString(), nextExpectedRanges: [`${up.next}-`] } };
    this.uploads.delete(token);
    const msg = up.user.messages.get(up.messageId);
    if (!msg) return graphError(404, "ErrorItemNotFound", "The message was deleted.");
    const bytes = Buffer.concat(up.received);
    const att = { id: newId("AAMkAtt"), name: up.name, contentType: up.contentType, size: bytes.length, contentBytes: bytes.toString("base64"), isInline: false };
    msg.attachments.push(att);
    this.touch(up.user, msg, "updated");
    return { status: 201, headers: { location: `${this.origin}/v1.0/users/${up.user.id}/messages/${msg.id}/attachments/${att.id}` } };
  }

  // ---- delta (https://learn.microsoft.com/en-us/graph/api/message-delta) -------------------

  private delta(user: SimUser, folderRef: string, q: URLSearchParams, ctx: Ctx): Res {
    const folder = resolveFolder(user, folderRef);
    if (!folder) return graphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
    const pref = ctx.prefer.find((p) => /^odata\.maxpagesize=\d+$/i.test(p));
    const pageSize = pref ? Math.max(1, Number(pref.split("=")[1])) : 10;
    const skipToken = q.get("$skiptoken");
    const deltaToken = q.get("$deltatoken");
    // 410 with a Location header holding a fresh initial delta request (delta-query-overview).
    const gone = () => graphError(410, "SyncStateNotFound", "The sync state generation is not found. Please restart the sync with an initial delta request.", { Location: `${this.origin}/v1.0/users/${user.id}/mailFolders/${folder.id}/messages/delta` });
    // Query options are baked into the tokens (delta-query-overview: "reuse the link as is").
    let state: { userId: string; folderId: string; items: Array<{ id: string; removed: boolean }>; endSeq: number; select?: string; expand?: string; pageSize: number; options?: string };
    if (skipToken) {
      const s = this.skipTokens.get(skipToken);
      if (!s || s.userId !== user.id) return gone();
      this.skipTokens.delete(skipToken);
      state = s;
    } else {
      let since = -1;
      let select = q.get("$select") ?? undefined;
      let expand = q.get("$expand") ?? undefined;
      // $filter (receivedDateTime ge/gt), $orderby (receivedDateTime desc) and changeType are
      // taken on the first call only and baked into the tokens; other forms are refused (message-delta).
      let options = deltaToken ? undefined : JSON.stringify(parseDeltaOptions(q));
      if (deltaToken) {
        const d = this.deltaTokens.get(deltaToken);
        if (!d || d.userId !== user.id || d.folderId !== folder.id) return gone();
        since = d.seq;
        select = d.select;
        expand = d.expand;
        options = d.options;
      }
      const o = options ? (JSON.parse(options) as ReturnType<typeof parseDeltaOptions>) : {};
      const known = deltaToken ? this.deltaTokens.get(deltaToken)!.known : new Set<string>();
      let changed = [...user.messages.values()].filter((m) => m.folderId === folder.id && m.seq > since)
        .filter((m) => !o.receivedAfter || (o.inclusive ? m.receivedDateTime >= o.receivedAfter : m.receivedDateTime > o.receivedAfter))
        .sort((a, b) => (o.newestFirst ? b.receivedDateTime.localeCompare(a.receivedDateTime) : a.seq - b.seq));
      if (o.changeTypes) changed = changed.filter((m) => (known.has(m.id) ? o.changeTypes!.includes("updated") : o.changeTypes!.includes("created")));
      let removed = since < 0 ? [] : user.tombstones.filter((t) => t.folderId === folder.id && t.seq > since && user.messages.get(t.id)?.folderId !== folder.id).map((t) => ({ id: t.id, removed: true }));
      if (o.changeTypes && !o.changeTypes.includes("deleted")) removed = [];
      state = { userId: user.id, folderId: folder.id, items: [...removed, ...changed.map((m) => ({ id: m.id, removed: false }))], endSeq: user.seq, select, expand, pageSize, options };
    }
    const page = state.items.slice(0, state.pageSize);
    const rest = state.items.slice(state.pageSize);
    const select = parseSelect(state.select ?? null);
    const value = page.map((it) => {
      const m = user.messages.get(it.id);
      if (it.removed || !m || m.folderId !== folder.id) return { "@odata.type": "#microsoft.graph.message", id: it.id, "@removed": { reason: "deleted" } };
      // Meeting requests keep their derived type (message-delta returns eventMessage items too).
      return { "@odata.type": "#microsoft.graph.message", ...this.messageJson(m, select, parseExpand(state.expand ?? null)) };
    });
    const base = `${this.origin}/v1.0/users/${user.id}/mailFolders/${folder.id}/messages/delta`;
    const headers: Record<string, string> = pref ? { "Preference-Applied": `odata.maxpagesize=${state.pageSize}` } : {};
    if (rest.length) {
      const token = crypto.randomBytes(16).toString("base64url");
      this.skipTokens.set(token, { ...state, items: rest });
      return { status: 200, headers, body: { "@odata.nextLink": `${base}?$skiptoken=${token}`, value } };
    }
    const token = crypto.randomBytes(16).toString("base64url");
    // The ids this sync has reported, so a later round can tell created from updated.
    const previous = deltaToken ? this.deltaTokens.get(deltaToken)?.known : undefined;
    const known = new Set([...(previous ?? []), ...[...user.messages.values()].filter((m) => m.folderId === folder.id && m.seq <= state.endSeq).map((m) => m.id)]);
    this.deltaTokens.set(token, { userId: user.id, folderId: folder.id, seq: state.endSeq, select: state.select, expand: state.expand, options: state.options, known });
    return { status: 200, headers, body: { "@odata.deltaLink": `${base}?$deltatoken=${token}`, value } };
  }

  /** Forgets every delta state of a mailbox (Outlook evicts old tokens; delta-query-overview). */
  expireDeltaTokens(userId: string) {
    for (const [k, v] of this.deltaTokens) if (v.userId === userId) this.deltaTokens.delete(k);
    for (const [k, v] of this.skipTokens) if (v.userId === userId) this.skipTokens.delete(k);
    this.contactsModel.expireDeltaTokens(userId);
    this.calendarModel.expireDeltaTokens(userId);
  }

  // ---- subscriptions (https://learn.microsoft.com/en-us/graph/api/resources/subscription) ---

  private async subscriptionsRoute(method: string, path: string, json: () => Record<string, unknown>, ctx: Ctx): Promise<Res> {
    const idMatch = path.match(/^\/subscriptions\/([^/]+)(\/reauthorize)?$/);
    if (path === "/subscriptions" && method === "GET") return { status: 200, body: { value: [...this.subscriptions.values()].filter((s) => s.appId === ctx.appId).map((s) => this.subJson(s)) } };
    if (path === "/subscriptions" && method === "POST") return this.createSubscription(json(), ctx);
    if (!idMatch) return graphError(400, "BadRequest", "Unsupported subscriptions request");
    const sub = this.subscriptions.get(idMatch[1]!);
    if (!sub || sub.appId !== ctx.appId || this.expired(sub)) return graphError(404, "ResourceNotFound", `The object was not found.`);
    if (idMatch[2] && method === "POST") {
      // Reauthorize needs the permission the subscription's resource needs, now.
      const denied = this.subscriptionPermission(sub.kind, ctx);
      if (denied) return denied;
      sub.reauthPending = false;
      sub.lastReauthAt = Date.now();
      return { status: 200, body: this.subJson(sub) };
    }
    if (method === "GET") return { status: 200, body: this.subJson(sub) };
    if (method === "DELETE") { this.subscriptions.delete(sub.id); return { status: 204 }; }
    if (method === "PATCH") {
      const exp = this.checkExpiration(json().expirationDateTime, sub.includeResourceData);
      if ("status" in exp) return exp;
      sub.expirationDateTime = exp.value;
      // A renewal also reauthorizes (change-notifications-lifecycle-events).
      sub.reauthPending = false;
      sub.lastReauthAt = Date.now();
      return { status: 200, body: this.subJson(sub) };
    }
    return graphError(405, "MethodNotAllowed", "Method not allowed");
  }

  private checkExpiration(value: unknown, rich: boolean): { value: string } | Res {
    const t = Date.parse(String(value ?? ""));
    if (Number.isNaN(t)) return graphError(400, "ExtensionError", "expirationDateTime is required and must be a date.");
    const max = rich ? Math.min(OUTLOOK_MAX_MINUTES_RICH, this.faults.subscriptionMaxMinutes) : this.faults.subscriptionMaxMinutes;
    if (t > Date.now() + max * 60_000 + 5_000) return graphError(400, "ExtensionError", `Subscription expiration can only be ${max} minutes in the future.`);
    if (t < Date.now()) return graphError(400, "ExtensionError", "Subscription expiration date time must be in the future.");
    return { value: new Date(Math.max(t, Date.now() + MIN_MINUTES * 60_000)).toISOString() };
  }

  private async createSubscription(b: Record<string, unknown>, ctx: Ctx): Promise<Res> {
    const resource = String(b.resource ?? "").replace(/^\//, "");
    const changeType = String(b.changeType ?? "").split(",").map((s) => s.trim()).filter(Boolean);
    const notificationUrl = String(b.notificationUrl ?? "");
    const lifecycleNotificationUrl = b.lifecycleNotificationUrl === undefined ? undefined : String(b.lifecycleNotificationUrl);
    const clientState = b.clientState === undefined ? undefined : String(b.clientState);
    const rich = b.includeResourceData === true;
    if (!changeType.length || changeType.some((c) => !["created", "updated", "deleted"].includes(c))) return graphError(400, "ExtensionError", "changeType must be created, updated and/or deleted.");
    if (!/^https:\/\//i.test(notificationUrl) || (lifecycleNotificationUrl !== undefined && !/^https:\/\//i.test(lifecycleNotificationUrl))) return graphError(400, "ExtensionError", "Subscription notification URL must be https.");
    if (clientState !== undefined && clientState.length > 128) return graphError(400, "ExtensionError", "clientState must be at most 128 characters.");
    // Outlook resources (outlook-change-notifications-overview): messages (optionally per folder
    // and with an isRead filter), events, and contacts (optionally per contact folder).
    // The resource is matched in its canonical form (key syntax, segment case); Graph echoes it as given.
    const canonical = canonicalPath(`/${resource}`).slice(1);
    const m = canonical.match(/^users\/([^/]+)\/(?:mailFolders\/([^/]+)\/)?messages(?:\?\$filter=isRead eq (true|false))?$/i);
    const ev = canonical.match(/^users\/([^/]+)\/events$/i);
    const ct = canonical.match(/^users\/([^/]+)\/(?:contactFolders\/([^/]+)\/)?contacts$/i);
    if (!m && !ev && !ct) return graphError(400, "ExtensionError", `Resource '${resource}' is not supported by the simulator.`);
    const kind: Subscription["kind"] = m ? "messages" : ev ? "events" : "contacts";
    const user = this.findUser(ctx.tenantId, (m ?? ev ?? ct)![1]!);
    if (!user) return graphError(404, "ResourceNotFound", "The user was not found.");
    const folderRef = m ? m[2] : ct ? (ct[2] ?? "contacts") : undefined;
    const folder = folderRef === undefined ? undefined : kind === "contacts" ? resolveContactFolder(user, folderRef) : resolveFolder(user, folderRef);
    if (folderRef !== undefined && !folder) return graphError(404, "ResourceNotFound", "The folder was not found.");
    const denied = this.subscriptionPermission(kind, ctx);
    if (denied) return denied;
    // Rich notifications need a certificate to encrypt resource data with (change-notifications-with-resource-data).
    if (rich && (typeof b.encryptionCertificate !== "string" || typeof b.encryptionCertificateId !== "string")) {
      return graphError(400, "ValidationError", "A valid encryptionCertificate and encryptionCertificateId are required when includeResourceData is true.");
    }
    const exp = this.checkExpiration(b.expirationDateTime, rich);
    if ("status" in exp) return exp;
    // Real Graph accepts a second subscription for the same resource and URL (no 409): a
    // client that loses track of one has an orphan that keeps notifying until it expires.
    // At most 1,000 active Outlook subscriptions per mailbox, all apps together
    // (outlook-change-notifications-overview; the error text is not documented, this one is ours).
    const onMailbox = [...this.subscriptions.values()].filter((s) => s.userId === user.id && !this.expired(s)).length + (this.foreignSubscriptions.get(user.id) ?? 0);
    if (onMailbox >= MAILBOX_SUBSCRIPTION_LIMIT) return graphError(403, "ExtensionError", `Operation: Create; Exception: [Status Code: Forbidden; Reason: The number of subscriptions for mailbox exceeds the limit of ${MAILBOX_SUBSCRIPTION_LIMIT}.]`);
    // Validation handshake on every URL (change-notifications-delivery-webhooks#notificationurl-validation).
    for (const target of [notificationUrl, lifecycleNotificationUrl].filter((u): u is string => !!u)) {
      if (!(await this.validateEndpoint(target))) {
        return graphError(400, "ValidationError", "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.");
      }
    }
    const sub: Subscription = {
      id: crypto.randomUUID(), appId: ctx.appId, tenantId: ctx.tenantId, resource, kind, userId: user.id, folderId: folder?.id,
      isReadFilter: m?.[3] === undefined ? undefined : m[3].toLowerCase() === "true", changeType, notificationUrl, lifecycleNotificationUrl,
      clientState, expirationDateTime: exp.value, includeResourceData: rich, createdAt: Date.now(),
    };
    this.subscriptions.set(sub.id, sub);
    return { status: 201, body: this.subJson(sub) };
  }

  private async validateEndpoint(target: string): Promise<boolean> {
    const token = `Validation: Testing client application reachability for subscription Request-Id: ${crypto.randomUUID()} <b>&amp;</b>`;
    const url = `${target}${target.includes("?") ? "&" : "?"}validationToken=${encodeURIComponent(token)}`;
    try {
      const res = await fetch(url, { method: "POST", headers: { "content-type": "text/plain; charset=utf-8" }, body: "", signal: AbortSignal.timeout(10_000) });
      return res.status === 200 && (await res.text()) === token && /text\/plain/i.test(res.headers.get("content-type") ?? "");
    } catch {
      return false;
    }
  }

  private subscriptionPermission(kind: Subscription["kind"], ctx: Ctx): Res | undefined {
    return kind === "messages" ? this.requireRole(ctx, "Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic.All")
      : kind === "events" ? this.requireRole(ctx, "Calendars.Read", "Calendars.ReadWrite") : this.requireRole(ctx, "Contacts.Read", "Contacts.ReadWrite");
  }

  /** Other applications' subscriptions on a mailbox (they count against the 1,000 limit). */
  readonly foreignSubscriptions = new Map<string, number>();

  /** reauthorizationRequired as Graph fires it: for subscriptions nearing expiry (when
   *  faults.reauthorizeLeadMs is set), at most once per model hour until reauthorized. */
  private graphFiredLifecycle() {
    if (this.stopped || this.faults.reauthorizeLeadMs <= 0) return;
    const now = Date.now();
    const every = REAUTHORIZE_EVERY_MS * (this.options.notificationRetryScale ?? 1);
    for (const s of [...this.subscriptions.values()]) {
      if (!s.lifecycleNotificationUrl || s.reauthPending || this.expired(s)) continue;
      if (Date.parse(s.expirationDateTime) - now > this.faults.reauthorizeLeadMs) continue;
      if (now - (s.lastReauthAt ?? s.createdAt) < every) continue;
      s.reauthPending = true;
      this.fireLifecycle(s.id, "reauthorizationRequired");
    }
  }

  /** An administrator changes the app's permissions: Graph asks every subscription of the app
   *  in that tenant to be reauthorized (change-notifications-lifecycle-events). */
  changeAppRoles(tenantId: string, clientId: string, roles: string[]) {
    const app = this.tenants.get(tenantId)?.apps.get(clientId);
    if (!app) throw new Error(`no app ${clientId} in ${tenantId}`);
    app.roles = roles;
    for (const s of [...this.subscriptions.values()]) {
      if (s.tenantId !== tenantId || s.appId !== clientId || !s.lifecycleNotificationUrl) continue;
      s.reauthPending = true;
      this.fireLifecycle(s.id, "reauthorizationRequired");
    }
  }

  private subJson(s: Subscription) {
    return { id: s.id, resource: s.resource, changeType: s.changeType.join(","), notificationUrl: s.notificationUrl, lifecycleNotificationUrl: s.lifecycleNotificationUrl ?? null, clientState: s.clientState ?? null, expirationDateTime: s.expirationDateTime, applicationId: s.appId, includeResourceData: s.includeResourceData };
  }

  private expired(s: Subscription): boolean {
    if (Date.parse(s.expirationDateTime) > Date.now()) return false;
    this.subscriptions.delete(s.id); // Graph deletes subscriptions that were not renewed in time
    return true;
  }

  /** Change notifications for a message change (change-notifications-delivery-webhooks). */
  private notify(user: SimUser, msg: SimMessage, change: "created" | "updated" | "deleted") {
    for (const s of [...this.subscriptions.values()]) {
      if (s.kind !== "messages" || s.userId !== user.id || this.expired(s)) continue;
      if (s.folderId && s.folderId !== msg.folderId) continue;
      let effective = change;
      if (s.isReadFilter !== undefined) {
        // With an isRead filter, starting to match is "created" and stopping is "deleted" (outlook-change-notifications-overview).
        const matches = change !== "deleted" && msg.isRead === s.isReadFilter;
        if (change === "updated") effective = matches ? "updated" : "deleted";
        else if (!matches && change === "created") continue;
      }
      if (!s.changeType.includes(effective)) continue;
      const item = {
        subscriptionId: s.id, subscriptionExpirationDateTime: s.expirationDateTime, changeType: effective, resource: `Users/${user.id}/Messages/${msg.id}`,
        resourceData: { "@odata.type": "#Microsoft.Graph.Message", "@odata.id": `Users/${user.id}/Messages/${msg.id}`, "@odata.etag": `W/"${msg.changeKey}"`, id: msg.id },
        clientState: s.clientState ?? null, tenantId: s.tenantId,
      };
      this.deliver(s.notificationUrl, item, user.id);
    }
  }

  /** Contact and event notifications: same envelope, resource `Users/{id}/Contacts/{id}` or `.../Events/{id}`. */
  private notifyItem(kind: "contacts" | "events", user: SimUser, id: string, changeKey: string, change: "created" | "updated" | "deleted", folderId?: string) {
    const entity = kind === "contacts" ? "Contact" : "Event";
    for (const s of [...this.subscriptions.values()]) {
      if (s.kind !== kind || s.userId !== user.id || this.expired(s)) continue;
      if (s.folderId && folderId && s.folderId !== folderId) continue;
      if (!s.changeType.includes(change)) continue;
      const resource = `Users/${user.id}/${entity}s/${id}`;
      this.deliver(s.notificationUrl, {
        subscriptionId: s.id, subscriptionExpirationDateTime: s.expirationDateTime, changeType: change, resource,
        resourceData: { "@odata.type": `#Microsoft.Graph.${entity}`, "@odata.id": resource, "@odata.etag": `W/"${changeKey}"`, id },
        clientState: s.clientState ?? null, tenantId: s.tenantId,
      }, user.id);
    }
  }

  notifyContact(user: SimUser, c: { id: string; folderId: string; changeKey: string }, change: "created" | "updated" | "deleted") {
    this.notifyItem("contacts", user, c.id, c.changeKey, change, c.folderId);
  }

  notifyEvent(user: SimUser, id: string, changeKey: string, change: "created" | "updated" | "deleted") {
    this.notifyItem("events", user, id, changeKey, change);
  }

  /** The mailbox owner's contacts (Outlook People). */
  people(userRef: string, folder = "contacts") {
    const user = this.userByRef(userRef);
    const f = () => { const x = resolveContactFolder(user, folder); if (!x) throw new Error(`no contact folder ${folder}`); return x; };
    const get = (id: string) => { const c = user.contacts.get(id); if (!c) throw new Error(`no contact ${id}`); return c; };
    return {
      user,
      list: () => [...user.contacts.values()].filter((c) => c.folderId === f().id),
      add: (props: Record<string, unknown>) => { const r = this.contactsModel.create(user, f(), props); if (r.status !== 201) throw new Error(JSON.stringify(r.body)); return get((r.body as { id: string }).id); },
      update: (id: string, props: Record<string, unknown>) => { const r = this.contactsModel.patch(user, get(id), props); if (r.status !== 200) throw new Error(JSON.stringify(r.body)); },
      /** Outlook's "change picture" on a contact (as PUT .../photo/$value). */
      setPhoto: (id: string, bytes: Buffer, contentType = "image/jpeg") => { const r = this.contactsModel.photo(user, id, true, "PUT", { bytes, contentType }); if (r.status !== 200) throw new Error(JSON.stringify(r.body)); },
      remove: (id: string) => this.contactsModel.remove(user, get(id)),
    };
  }

  /** The mailbox owner's calendar (Outlook). */
  calendar(userRef: string) {
    const user = this.userByRef(userRef);
    const cal = this.calendarModel;
    return {
      user,
      add: (input: Parameters<CalendarModel["add"]>[1]) => cal.add(user, input),
      update: (id: string, changes: Parameters<CalendarModel["update"]>[2]) => cal.update(user, id, changes),
      changeOccurrence: (seriesId: string, originalStartUtc: string, change: Parameters<CalendarModel["changeOccurrence"]>[3]) => cal.changeOccurrence(user, seriesId, originalStartUtc, change),
      remove: (id: string) => cal.remove(user, id),
      instances: (from: Date, to: Date) => cal.instances(user, from, to),
    };
  }

  /** Lifecycle notifications (change-notifications-lifecycle-events). */
  /** Lifecycle notifications (change-notifications-lifecycle-events). Event names Graph may add
   *  later can be sent too (a receiver must not take them for forgeries). */
  fireLifecycle(subscriptionId: string, lifecycleEvent: "reauthorizationRequired" | "subscriptionRemoved" | "missed" | (string & {})) {
    const s = this.subscriptions.get(subscriptionId);
    if (!s?.lifecycleNotificationUrl) throw new Error(`subscription ${subscriptionId} has no lifecycle URL`);
    if (lifecycleEvent === "subscriptionRemoved") this.subscriptions.delete(s.id);
    this.stats.lifecycleSent++;
    this.deliver(s.lifecycleNotificationUrl, { subscriptionId: s.id, subscriptionExpirationDateTime: s.expirationDateTime, tenantId: s.tenantId, clientState: s.clientState ?? null, lifecycleEvent }, s.userId);
  }

  /** Hands one notification item to the delivery (batching, answer window, retries over
   *  hours, slow-endpoint throttling: delivery.ts), with the test faults applied first
   *  (mailbox-targeted ones counted as delivered: mailboxFaults.ts). */
  private deliver(url: string, item: Record<string, unknown>, userId?: string) {
    if (userId && this.mailboxFaults.dropNotification(userId)) { this.stats.notificationsDropped++; return; }
    if (this.faults.dropNotificationsNext > 0) { this.faults.dropNotificationsNext--; this.stats.notificationsDropped++; return; }
    const copies = this.faults.duplicateNotifications ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const go = () => this.delivery.send(url, item);
      if (this.faults.reorderNotificationsBatch > 1) {
        this.held.push(go);
        if (this.held.length >= this.faults.reorderNotificationsBatch) this.held.splice(0).reverse().forEach((f) => f());
      } else if (this.faults.delayNotificationsMs > 0) {
        const t = setTimeout(() => { this.timers.delete(t); go(); }, this.faults.delayNotificationsMs);
        this.timers.add(t);
      } else go();
    }
  }

  /** Delivers notifications held back for reordering. */
  flushHeldNotifications() {
    this.held.splice(0).reverse().forEach((f) => f());
  }

  // ---- $batch (https://learn.microsoft.com/en-us/graph/json-batching) ----------------------

  private async batch(b: Record<string, unknown>, ctx: Ctx, outerHeaders: Record<string, string>): Promise<Res> {
    const requests = Array.isArray(b.requests) ? (b.requests as Array<Record<string, unknown>>) : undefined;
    if (!requests) return graphError(400, "BadRequest", "Invalid batch payload format.");
    if (requests.length > 20) return graphError(400, "BadRequest", "The number of batch requests exceeds the limit of 20.");
    const ids = new Set<string>();
    for (const r of requests) {
      const id = String(r.id ?? "").toLowerCase();
      if (!id || ids.has(id)) return graphError(400, "BadRequest", "Batch request ids must be unique.");
      ids.add(id);
    }
    for (const r of requests) {
      const deps = Array.isArray(r.dependsOn) ? (r.dependsOn as unknown[]).map((d) => String(d).toLowerCase()) : [];
      if (deps.some((d) => !ids.has(d))) return graphError(400, "BadRequest", "A dependsOn id does not name a request of the batch.");
    }
    const results = new Map<string, { id: string; status: number; headers: Record<string, string>; body?: unknown }>();
    const run = async (r: Record<string, unknown>) => {
      const id = String(r.id);
      const deps = Array.isArray(r.dependsOn) ? (r.dependsOn as string[]) : [];
      if (deps.some((d) => { const x = results.get(d.toLowerCase()); return !x || x.status >= 400; })) {
        results.set(id.toLowerCase(), { id, status: 424, headers: {}, body: (graphError(424, "FailedDependency", "Dependent request failed.").body) });
        return;
      }
      const url = new URL(String(r.url ?? "").replace(/^\/?/, "/v1.0/"), this.origin);
      const headers = { authorization: outerHeaders.authorization ?? "", ...(r.headers as Record<string, string> | undefined), prefer: (r.headers as Record<string, string> | undefined)?.prefer ?? (ctx.immutableIds ? 'IdType="ImmutableId"' : "") };
      const res = await this.graphRequest(String(r.method ?? "GET").toUpperCase(), canonicalPath(decodeURIComponent(url.pathname).slice(5)), url.searchParams, headers, Buffer.from(r.body === undefined ? "" : JSON.stringify(r.body)));
      // Each item answer carries its own headers (json-batching: content-type at least).
      const itemHeaders: Record<string, string> = { ...(res.headers ?? {}) };
      if (res.body !== undefined) itemHeaders["content-type"] ??= "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8";
      else if (res.text !== undefined) itemHeaders["content-type"] ??= "text/plain";
      results.set(id.toLowerCase(), { id, status: res.status, headers: itemHeaders, body: res.body === undefined ? res.text : withInnerError(res.body) });
    };
    // Items without dependsOn run in parallel (each counted against the mailbox limits); items
    // with dependsOn run once what they depend on has run, whatever the order they are listed in.
    const pending = new Set(requests);
    while (pending.size) {
      const ready = [...pending].filter((r) => (Array.isArray(r.dependsOn) ? (r.dependsOn as string[]) : []).every((d) => results.has(String(d).toLowerCase())));
      if (!ready.length) return graphError(400, "BadRequest", "The dependsOn references form a cycle.");
      for (const r of ready) pending.delete(r);
      await Promise.all(ready.map(run));
    }
    return { status: 200, body: { responses: requests.map((r) => results.get(String(r.id).toLowerCase())) } };
  }

  // ---- control API (test only, not part of Graph) -----------------------------------------

  addTenant(input: { tenantId: string; apps: SimApp[]; consentGranted?: boolean }): SimTenant {
    const t: SimTenant = { tenantId: input.tenantId, apps: new Map(input.apps.map((a) => [a.clientId, a])), users: new Map(), consentGranted: input.consentGranted ?? true };
    this.tenants.set(t.tenantId, t);
    return t;
  }

  addUser(tenantId: string, input: Parameters<typeof makeUser>[1]): SimUser {
    const t = this.tenants.get(tenantId);
    if (!t) throw new Error(`no tenant ${tenantId}`);
    const u = makeUser(tenantId, input);
    t.users.set(u.id, u);
    return u;
  }

  userByRef(ref: string): SimUser {
    for (const t of this.tenants.values()) { const u = this.findUser(t.tenantId, ref); if (u) return u; }
    throw new Error(`no user ${ref}`);
  }

  /** Acts as the mailbox owner in Outlook. */
  outlook(userRef: string) {
    const user = this.userByRef(userRef);
    const msg = (id: string) => { const m = user.messages.get(id); if (!m) throw new Error(`no message ${id}`); return m; };
    return {
      user,
      messages: (folder = "inbox") => { const f = resolveFolder(user, folder); return [...user.messages.values()].filter((m) => !f || m.folderId === f.id); },
      markRead: (id: string, isRead = true) => { const m = msg(id); m.isRead = isRead; this.touch(user, m, "updated"); },
      /** Outlook's Delete: a move to Deleted Items. */
      delete: (id: string) => this.moveMessage(user, msg(id), resolveFolder(user, "deleteditems")!.id, true),
      hardDelete: (id: string) => this.removeMessage(user, msg(id)),
      move: (id: string, folder: string) => this.moveMessage(user, msg(id), resolveFolder(user, folder)!.id, true),
      /**
       * Mail arriving from outside (transport delivery, not a Graph create): a received item
       * (not a draft) in the folder, with a "created" notification. `messageClass` sets
       * PidTagMessageClass (meeting requests: IPM.Schedule.Meeting.Request with `odataType`
       * #microsoft.graph.eventMessageRequest).
       */
      receive: (m: { subject: string; from: { name?: string; address: string }; to?: Array<{ name?: string; address: string }>; cc?: Array<{ name?: string; address: string }>; replyTo?: Array<{ name?: string; address: string }>;
        body: { contentType: "text" | "html"; content: string }; receivedDateTime?: string; isRead?: boolean; folder?: string; messageClass?: string; odataType?: string; internetMessageId?: string;
        attachments?: Array<{ name: string; contentType: string; bytes: Buffer; isInline?: boolean }>; ext?: Array<{ id: string; value: string }> }): SimMessage => {
        const folder = resolveFolder(user, m.folder ?? "inbox");
        if (!folder) throw new Error(`no folder ${m.folder}`);
        const now = new Date().toISOString();
        const ext = new Map<string, { id: string; value: string }>();
        if (m.messageClass) ext.set("string 0x001a", { id: "String 0x001A", value: m.messageClass });
        for (const p of m.ext ?? []) ext.set(normPropId(p.id), p);
        const recipients = (l?: Array<{ name?: string; address: string }>) => (l ?? []).map((a) => ({ emailAddress: a }));
        const created: SimMessage = {
          id: newId(), folderId: folder.id, changeKey: newChangeKey(), createdDateTime: now, lastModifiedDateTime: now, receivedDateTime: m.receivedDateTime ?? now, sentDateTime: m.receivedDateTime ?? now,
          isDraft: false, isRead: m.isRead ?? false, subject: m.subject, importance: "normal", from: { emailAddress: m.from }, toRecipients: recipients(m.to ?? [{ address: user.mail }]),
          ccRecipients: recipients(m.cc), replyTo: recipients(m.replyTo), odataType: m.odataType, body: m.body, ext, seq: 0, internetMessageId: m.internetMessageId ?? `<${crypto.randomUUID()}@sim.example>`,
          attachments: (m.attachments ?? []).map((a) => ({ id: newId("AAMkAtt"), name: a.name, contentType: a.contentType, size: a.bytes.length, contentBytes: a.bytes.toString("base64"), isInline: a.isInline ?? false })),
        };
        user.messages.set(created.id, created);
        this.touch(user, created, "created");
        return created;
      },
    };
  }

  private async control(method: string, path: string, body: Buffer): Promise<Res> {
    const b = body.length ? (JSON.parse(body.toString()) as Record<string, unknown>) : {};
    let m: RegExpMatchArray | null;
    if (path === "/_sim/stats" && method === "GET") return { status: 200, body: { ...this.stats, byMailbox: Object.fromEntries(this.stats.byMailbox), byRoute: Object.fromEntries(this.stats.byRoute), maxInFlight: Object.fromEntries(this.stats.maxInFlight) } };
    if (path === "/_sim/faults" && method === "POST") { Object.assign(this.faults, b); return { status: 200, body: this.faults }; }
    if ((m = path.match(/^\/_sim\/users\/([^/]+)\/messages$/)) && method === "GET") {
      const o = this.outlook(m[1]!);
      return { status: 200, body: { value: o.messages(String(b.folder ?? "inbox")).map((x) => ({ ...this.messageJson(x), attachments: x.attachments.map((a) => ({ name: a.name, contentType: a.contentType, size: a.size })), singleValueExtendedProperties: [...x.ext.values()] })) } };
    }
    if ((m = path.match(/^\/_sim\/users\/([^/]+)\/messages\/([^/]+)\/(read|unread|delete)$/)) && method === "POST") {
      const o = this.outlook(m[1]!);
      if (m[3] === "delete") o.delete(m[2]!); else o.markRead(m[2]!, m[3] === "read");
      return { status: 204 };
    }
    if ((m = path.match(/^\/_sim\/subscriptions\/([^/]+)\/lifecycle$/)) && method === "POST") { this.fireLifecycle(m[1]!, b.event as "missed"); return { status: 204 }; }
    return { status: 404, body: { error: "unknown control route" } };
  }
}

const MESSAGE_SIZE_PROP = "integer 0x0e08";
/** What PidTagMessageSize reports for a simulated message (headers counted as 1 KB). */
export function messageSize(m: SimMessage): number {
  return 1024 + Buffer.byteLength(m.subject) + Buffer.byteLength(m.body.content) + m.attachments.reduce((a, x) => a + x.size, 0);
}

/** Every Graph error envelope carries innerError {date, request-id, client-request-id} (https://learn.microsoft.com/en-us/graph/errors). */
function withInnerError(body: unknown): unknown {
  const e = (body as { error?: Record<string, unknown> } | null)?.error;
  if (!e || typeof e !== "object" || typeof e.code !== "string" || e.innerError) return body;
  return { ...(body as object), error: { ...e, innerError: { date: new Date().toISOString().slice(0, 19), "request-id": crypto.randomUUID(), "client-request-id": crypto.randomUUID() } } };
}

function attachmentJson(a: { id: string; name: string; contentType: string; size: number; contentBytes: string; isInline: boolean }) {
  return { "@odata.type": "#microsoft.graph.fileAttachment", id: a.id, name: a.name, contentType: a.contentType, size: a.size, isInline: a.isInline, contentBytes: a.contentBytes };
}

export async function startGraphSimulator(options: SimOptions = {}): Promise<GraphSimulator> {
  return new GraphSimulator(options).start();
}
