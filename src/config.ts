/**
 * Every setting umconnect reads, parsed and validated once. Nothing else in src/ or
 * functions/ reads process.env: call getConfig() (cached) or loadConfig(env) (tests).
 * All problems are reported together in one CONFIG_INVALID error, so an administrator fixes
 * a deployment in one pass. infra/ sets exactly these names (checked by test/infra).
 */
import { z } from "zod";
import { ConnectorError } from "./errors.js";

const bool = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const httpsUrl = z.string().url().refine((u) => u.startsWith("https://"), "must be an https:// URL");

const schema = z
  .object({
    // Storage: a connection string (Azurite, dev) or service URIs used with a managed identity (Azure).
    UMC_STORAGE_CONNECTION_STRING: z.string().min(1).optional(),
    UMC_TABLE_SERVICE_URI: z.string().url().optional(),
    UMC_QUEUE_SERVICE_URI: z.string().url().optional(),
    UMC_TABLE_PREFIX: z.string().regex(/^[A-Za-z][A-Za-z0-9]{0,30}$/, "letters and digits, starting with a letter").default("umc"),
    UMC_SYNC_QUEUE: z.string().regex(/^[a-z0-9-]{3,63}$/).default("sync-mailbox"),
    // Identity: the multi-tenant app registration.
    UMC_CLIENT_ID: z.string().min(1).optional(),
    UMC_CLIENT_CERT_PATH: z.string().min(1).optional(),
    UMC_CLIENT_SECRET: z.string().min(1).optional(),
    UMC_MANAGED_IDENTITY_CLIENT_ID: z.string().min(1).optional(),
    UMC_AUTHORITY_HOST: httpsUrl.default("https://login.microsoftonline.com"),
    UMC_GRAPH_BASE_URL: httpsUrl.default("https://graph.microsoft.com"),
    // Public base URL of this app, for Graph notificationUrl / lifecycleNotificationUrl (must be https).
    UMC_PUBLIC_BASE_URL: httpsUrl.optional(),
    // Secrets that sign things: clientState derivation, store-notification HMAC, consent state.
    UMC_WEBHOOK_SECRET: z.string().min(32, "at least 32 characters").optional(),
    // Obsolete (accepted, not used): store pushes and UC-location callbacks are signed with each
    // endpoint's own secret (src/security/endpointSecrets.ts, `umconnect endpoint rotate-secret`).
    UMC_STORE_NOTIFY_SECRET: z.string().min(32, "at least 32 characters").optional(),
    UMC_KEY_VAULT_URI: httpsUrl.optional(),
    UMC_SECRETS_FILE: z.string().min(1).optional(),
    UMC_ADMIN_TOKEN: z.string().min(24, "at least 24 characters").optional(),
    // Admin API in Azure: Entra access tokens of the operator's tenant, with this app role.
    UMC_ADMIN_TENANT_ID: z.string().uuid("a tenant id (GUID)").optional(),
    UMC_ADMIN_ROLE: z.string().regex(/^[A-Za-z0-9._-]{1,120}$/).default("Umconnect.Admin"),
    // Alerts are POSTed here (a Teams workflow, an incident tool); signed when a secret is set.
    UMC_ALERT_WEBHOOK_URL: httpsUrl.optional(),
    UMC_ALERT_WEBHOOK_SECRET: z.string().min(32, "at least 32 characters").optional(),
    // Lab only: hosts that UC-location callbacks and alerts may reach although they resolve to
    // internal addresses (comma-separated names or addresses). Refused in Azure.
    UMC_OUTBOUND_ALLOW_HOSTS: z.string().max(2000).regex(/^[A-Za-z0-9.:,\[\] -]*$/, "host names or addresses, comma-separated").optional(),
    // Behaviour
    UMC_LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
    UMC_FAST_READ_INTERVAL_SECONDS: int(1, 3600).default(5),
    // How long after a link's last change the fast read check keeps looking at it (then the poll does).
    UMC_FAST_READ_WINDOW_SECONDS: int(1, 604_800).default(600),
    // Fast read checks the app starts per second at most (each one delta request and its run).
    UMC_FAST_READ_MAX_PER_SECOND: int(1, 10_000).default(50),
    UMC_GRAPH_MAX_CONCURRENCY_PER_MAILBOX: int(1, 4).default(4),
    /** A Graph request slower than this is given up (transient GRAPH_UNAVAILABLE). */
    UMC_GRAPH_REQUEST_TIMEOUT_SECONDS: int(1, 240).default(60),
    UMC_MASS_DELETE_MAX_SHARE: z.coerce.number().min(0).max(1).default(0.5),
    /** The mirror's clock check (docs/mirror.md): a store whose clock is off by more than this raises CLOCK_SKEW. */
    UMC_MIRROR_SKEW_ALERT_SECONDS: int(1, 86_400).default(60),
    /** Messages per mirror batch: one FETCH, one journal row, one MULTIAPPEND, one pairs transaction (at most 99: its pairs and its journal row share one Table transaction). */
    UMC_MIRROR_BATCH: int(1, 99).default(50),
    /** Backup connections a mirror run appends on at once when it has more than one batch to copy (each takes a slot of the backup's connection budget; none is waited for). */
    UMC_MIRROR_APPEND_CONNECTIONS: int(1, 4).default(2),
    // A run renews its lease every third of this; a worker that dies holds its mailboxes this long.
    UMC_LEASE_SECONDS: int(5, 600).default(30),
    // A run's time for new work: then it stops taking actions, lets those in flight settle and
    // hands the rest to a follow-up run, well before the hard deadline (src/timeouts.ts).
    UMC_RUN_BUDGET_SECONDS: int(1, 200).default(150),
    /** How long one IDLE watcher holds its shards (src/app/watchers.ts); a little over the 60 s between the two watch timers. */
    UMC_WATCH_HOLD_SECONDS: int(2, 600).default(65),
    UMC_SCHEDULE_SHARDS: int(1, 1024).default(16),
    UMC_ENVIRONMENT: z.enum(["azure", "local", "test"]).default("azure"),
  })
;

/**
 * Rules across settings, checked on the raw values so they are reported together with the
 * per-setting problems (zod skips refinements once a field fails).
 */
function crossProblems(c: Record<string, string | undefined>): string[] {
  const out: string[] = [];
  // App Service hands an unresolvable Key Vault reference to the app as its literal text
  // (https://learn.microsoft.com/en-us/azure/app-service/app-service-key-vault-references#troubleshooting-key-vault-references):
  // it would pass as a 40-character "secret" and be used to sign. Name the setting, never the value.
  for (const [k, v] of Object.entries(c)) {
    if (v && /^\s*@Microsoft\.KeyVault\s*\(/i.test(v)) out.push(`${k}: the Key Vault reference was not resolved (the app's identity cannot read the secret, or the reference is wrong); see the app setting's Key Vault reference status in the portal`);
  }
  if (!c.UMC_STORAGE_CONNECTION_STRING && !(c.UMC_TABLE_SERVICE_URI && c.UMC_QUEUE_SERVICE_URI)) {
    out.push("UMC_STORAGE_CONNECTION_STRING: set UMC_STORAGE_CONNECTION_STRING, or both UMC_TABLE_SERVICE_URI and UMC_QUEUE_SERVICE_URI");
  }
  if ((c.UMC_ENVIRONMENT ?? "azure") === "azure") {
    // Production never runs on a client secret (DESIGN.md section 5).
    if (c.UMC_CLIENT_SECRET) out.push("UMC_CLIENT_SECRET: client secrets are not allowed in Azure; use a certificate or the managed identity");
    for (const key of ["UMC_CLIENT_ID", "UMC_PUBLIC_BASE_URL", "UMC_WEBHOOK_SECRET", "UMC_KEY_VAULT_URI"]) {
      if (!c[key]) out.push(`${key}: required in Azure`);
    }
    // Outgoing calls never reach internal addresses in Azure (src/security/outbound.ts).
    if (c.UMC_OUTBOUND_ALLOW_HOSTS) out.push("UMC_OUTBOUND_ALLOW_HOSTS: the allow-list for internal addresses is for labs; in Azure callbacks and alerts only reach public addresses");
    // The admin API takes Entra tokens in Azure; a shared bearer token is for the dev host only.
    if (c.UMC_ADMIN_TOKEN) out.push("UMC_ADMIN_TOKEN: the local admin token is for the dev host; in Azure the admin API takes Entra tokens (UMC_ADMIN_TENANT_ID)");
    if (!c.UMC_ADMIN_TENANT_ID) out.push("UMC_ADMIN_TENANT_ID: required in Azure (the tenant whose users administer umconnect)");
    if (!c.UMC_CLIENT_CERT_PATH && !c.UMC_MANAGED_IDENTITY_CLIENT_ID) {
      out.push("UMC_MANAGED_IDENTITY_CLIENT_ID: set UMC_MANAGED_IDENTITY_CLIENT_ID (federated credential) or UMC_CLIENT_CERT_PATH");
    }
  }
  return out;
}

export type RawConfig = z.output<typeof schema>;

export interface Config {
  environment: RawConfig["UMC_ENVIRONMENT"];
  storage: {
    connectionString?: string;
    tableServiceUri?: string;
    queueServiceUri?: string;
    tablePrefix: string;
    syncQueue: string;
  };
  identity: {
    clientId?: string;
    clientCertPath?: string;
    clientSecret?: string;
    managedIdentityClientId?: string;
    authorityHost: string;
  };
  graph: { baseUrl: string; maxConcurrencyPerMailbox: number; requestTimeoutMs: number };
  publicBaseUrl?: string;
  secrets: {
    webhookSecret?: string;
    keyVaultUri?: string;
    secretsFile?: string;
    adminToken?: string;
  };
  admin: { tenantId?: string; role: string };
  alerts: { webhookUrl?: string; webhookSecret?: string };
  /** Outgoing calls (callbacks, alerts): hosts a lab allows to be internal. */
  outbound: { allowHosts: string[] };
  /** Application Insights (platform setting APPLICATIONINSIGHTS_CONNECTION_STRING, set by the template). */
  telemetry: { appInsightsConnectionString?: string };
  logLevel: RawConfig["UMC_LOG_LEVEL"];
  sync: { fastReadIntervalSeconds: number; fastReadWindowSeconds: number; fastReadMaxPerSecond: number; massDeleteMaxShare: number; leaseSeconds: number; runBudgetSeconds: number; watchHoldSeconds: number; scheduleShards: number };
  /** Functions switched off with the platform's own setting (read by the dev host; Azure's runtime reads it itself). */
  host: { disabledFunctions: readonly string[] };
  /** The disaster-recovery mirror (src/app/mirror.ts). */
  mirror: { skewAlertSeconds: number; batch: number; appendConnections: number };
}

/**
 * The Functions platform's setting `AzureWebJobs.<FUNCTION_NAME>.Disabled = true`: the runtime
 * ignores the function's trigger, yet a disabled function can still be run on demand with the
 * master key (https://learn.microsoft.com/en-us/azure/azure-functions/disable-function). Linux
 * app settings cannot hold dots, so `AzureWebJobs__<name>__Disabled` counts too. The dev host
 * honours it so the local world can run with the fast read check and the safety-net timers off.
 */
export function disabledFunctions(env: Record<string, string | undefined>): string[] {
  return Object.entries(env)
    .map(([k, v]) => [k.match(/^AzureWebJobs(?:\.|__)([A-Za-z0-9_-]+)(?:\.|__)Disabled$/i)?.[1], v] as const)
    .filter(([name, v]) => name && /^(true|1)$/i.test(v ?? ""))
    .map(([name]) => name!)
    .sort();
}

/** The names of every setting, for infra tests and documentation. */
export const CONFIG_KEYS: readonly string[] = Object.keys(schema.shape);

export function loadConfig(env: Record<string, string | undefined>): Config {
  // Empty strings count as unset: app settings often exist with no value.
  const input = Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith("UMC_") && v !== undefined && v !== ""));
  const parsed = schema.safeParse(input);
  const problems = [...(parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)), ...crossProblems(input)];
  if (!parsed.success || problems.length) {
    throw new ConnectorError("CONFIG_INVALID", `invalid configuration (${problems.length} problem${problems.length > 1 ? "s" : ""}): ${problems.join("; ")}`, { problems });
  }
  const c = parsed.data;
  return Object.freeze({
    environment: c.UMC_ENVIRONMENT,
    storage: {
      connectionString: c.UMC_STORAGE_CONNECTION_STRING,
      tableServiceUri: c.UMC_TABLE_SERVICE_URI,
      queueServiceUri: c.UMC_QUEUE_SERVICE_URI,
      tablePrefix: c.UMC_TABLE_PREFIX,
      syncQueue: c.UMC_SYNC_QUEUE,
    },
    identity: {
      clientId: c.UMC_CLIENT_ID,
      clientCertPath: c.UMC_CLIENT_CERT_PATH,
      clientSecret: c.UMC_CLIENT_SECRET,
      managedIdentityClientId: c.UMC_MANAGED_IDENTITY_CLIENT_ID,
      authorityHost: c.UMC_AUTHORITY_HOST,
    },
    graph: { baseUrl: c.UMC_GRAPH_BASE_URL, maxConcurrencyPerMailbox: c.UMC_GRAPH_MAX_CONCURRENCY_PER_MAILBOX, requestTimeoutMs: c.UMC_GRAPH_REQUEST_TIMEOUT_SECONDS * 1000 },
    publicBaseUrl: c.UMC_PUBLIC_BASE_URL,
    secrets: {
      webhookSecret: c.UMC_WEBHOOK_SECRET,
      keyVaultUri: c.UMC_KEY_VAULT_URI,
      secretsFile: c.UMC_SECRETS_FILE,
      adminToken: c.UMC_ADMIN_TOKEN,
    },
    admin: { tenantId: c.UMC_ADMIN_TENANT_ID, role: c.UMC_ADMIN_ROLE },
    alerts: { webhookUrl: c.UMC_ALERT_WEBHOOK_URL, webhookSecret: c.UMC_ALERT_WEBHOOK_SECRET },
    outbound: { allowHosts: (c.UMC_OUTBOUND_ALLOW_HOSTS ?? "").split(",").map((h) => h.trim().replace(/^\[|\]$/g, "")).filter(Boolean) },
    // The one setting not ours: the Functions platform and the Azure Monitor distro share its name.
    telemetry: { appInsightsConnectionString: env.APPLICATIONINSIGHTS_CONNECTION_STRING || undefined },
    logLevel: c.UMC_LOG_LEVEL,
    sync: {
      fastReadIntervalSeconds: c.UMC_FAST_READ_INTERVAL_SECONDS,
      fastReadWindowSeconds: c.UMC_FAST_READ_WINDOW_SECONDS,
      fastReadMaxPerSecond: c.UMC_FAST_READ_MAX_PER_SECOND,
      massDeleteMaxShare: c.UMC_MASS_DELETE_MAX_SHARE,
      leaseSeconds: c.UMC_LEASE_SECONDS,
      runBudgetSeconds: c.UMC_RUN_BUDGET_SECONDS,
      watchHoldSeconds: c.UMC_WATCH_HOLD_SECONDS,
      scheduleShards: c.UMC_SCHEDULE_SHARDS,
    },
    mirror: { skewAlertSeconds: c.UMC_MIRROR_SKEW_ALERT_SECONDS, batch: c.UMC_MIRROR_BATCH, appendConnections: c.UMC_MIRROR_APPEND_CONNECTIONS },
    host: { disabledFunctions: disabledFunctions(env) },
  });
}

let cached: Config | undefined;

/** The process's configuration, parsed from process.env on first use (cold start). */
export function getConfig(): Config {
  cached ??= loadConfig(process.env);
  return cached;
}
