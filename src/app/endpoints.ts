/**
 * The directory: voice-store endpoints with their super-user secrets, and feature profiles.
 *
 * Where they come from:
 *  - Stored configuration (Table Storage, table "config"), managed with `umconnect endpoint`
 *    and `umconnect profile`: endpoints name their password by a secret name, never hold it.
 *  - Secrets by name: from Key Vault in Azure (UMC_KEY_VAULT_URI, read with the managed
 *    identity), from the local secrets file's `secrets` map in the dev host.
 *  - The local secrets file (UMC_SECRETS_FILE) may also list endpoints with inline passwords
 *    and profiles: the dev host and the tests.
 * An id defined in both places is a configuration error, not a silent preference.
 * Secrets are never written to tables or logs, and listEndpoints() leaves them out.
 *
 * Tenants (docs/security.md): every endpoint and profile belongs to one customer tenant
 * (`tenantId`) or is marked `shared` by the operator (a hosted voice platform serving several
 * tenants). Entries from before ownership existed load, but have no owner: no link can be made
 * to them and runs of existing links are refused with TENANT_BOUNDARY (an alert on the status
 * page) until the operator assigns one; nothing already synced is touched meanwhile.
 * An endpoint that names a secret outside its own prefix, or asks for plaintext IMAP in Azure,
 * is refused on its own (its secret is never read); the others load.
 */
import fs from "node:fs";
import { z } from "zod";
import type { TokenCredential } from "@azure/core-auth";
import { ConnectorError } from "../errors.js";
import type { ImapAuth, ImapEndpoint } from "../imap/endpoint.js";
import { parseProfile, effectiveProfile, DEFAULT_PROFILE, type FeatureProfile } from "../admin/profiles.js";
import { parseSigningKeys, passwordSecretProblem, signingSecretName, type SigningKeys } from "../security/endpointSecrets.js";

/** Who may use an endpoint or profile: one tenant, every tenant (shared), or nobody yet (legacy). */
export type Owner = { tenantId: string } | { shared: true } | undefined;
export const ownerOf = (x: { tenantId?: string; shared?: boolean }): Owner => (x.tenantId ? { tenantId: x.tenantId.toLowerCase() } : x.shared ? { shared: true } : undefined);
export const ownerText = (o: Owner): string => (!o ? "no owner" : "shared" in o ? "shared" : `tenant ${o.tenantId}`);

/** Default cap on one stored message (RFC822.SIZE), checked before its body is fetched. */
export const DEFAULT_MAX_MESSAGE_BYTES = 50 * 1024 * 1024;
import { VENDOR_BUDGETS } from "./connectionBudget.js";

const secretName = z.string().regex(/^[0-9A-Za-z-]{1,127}$/, "a Key Vault secret name (letters, digits, dashes)");
const masterAuth = { masterUser: z.string().min(1).max(200) };
/** Each link logs in with its own password (src/app/credentials.ts): the endpoint needs none. */
const perLink = { passwordPerLink: z.boolean().optional() };
/** The password inline (local secrets file only) or by secret name (stored configuration). */
const authSchema = z.discriminatedUnion("mode", [
  z.object({ mode: z.literal("user-password"), ...perLink, password: z.string().min(1).optional(), passwordSecret: secretName.optional() }),
  z.object({ mode: z.literal("master-separator"), ...masterAuth, ...perLink, separator: z.string().min(1).max(2).optional(), password: z.string().min(1).optional(), passwordSecret: secretName.optional() }),
  z.object({ mode: z.literal("sasl-authzid"), ...masterAuth, ...perLink, password: z.string().min(1).optional(), passwordSecret: secretName.optional() }),
]).refine((a) => (a.password !== undefined && a.passwordSecret !== undefined) ? false : a.passwordPerLink === true || (a.password === undefined) !== (a.passwordSecret === undefined),
  "exactly one of password (local file) or passwordSecret (secret name), or passwordPerLink: true with at most one");

export const endpointSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "letters, digits, dot, dash, underscore"),
  host: z.string().min(1).max(253),
  port: z.number().int().min(1).max(65535),
  tls: z.enum(["implicit", "starttls", "plaintext"]),
  /** A PEM file (local) or the PEM text (stored) of the CA that signs the store's certificate. */
  caBundlePath: z.string().optional(),
  caBundle: z.string().max(64_000).regex(/-----BEGIN CERTIFICATE-----/, "PEM certificates").optional(),
  auth: authSchema,
  maxConnections: z.number().int().min(1).max(200).default(8),
  /**
   * After the store rejected a credential, logins with it stop; one probe is allowed after
   * this many seconds, the wait doubling with each failed probe up to 6 hours
   * (src/app/credentialGate.ts). Default 30 minutes: the reset window of common lockout
   * policies, so probes alone never add up to a lockout.
   */
  authRetrySeconds: z.number().int().min(1).max(86_400).default(1800),
  /**
   * Logins with one credential in flight at once per instance. Each is one failed attempt on
   * the store's lockout counter if the password changed meanwhile, so the default is 1 (a
   * login is a few round trips; runs then share the session time, not the login). Raise only
   * for a store whose lockout threshold is generous.
   */
  loginsAtOnce: z.number().int().min(1).max(8).default(1),
  /**
   * A connection the store has said nothing on for this long gets a NOOP; no answer within the
   * same time again and it is dropped (an IDLE watch then reconnects). 300 s is imapflow's
   * default; Dovecot says "* OK Still here" every 2 minutes during IDLE, so a watch on a store
   * that hangs mid-IDLE is blind for at most twice this (the poll covers that time).
   */
  silenceTimeoutSeconds: z.number().int().min(1).max(1800).default(300),
  /**
   * How changes on the store reach us: its own push hook (POST to /api/store/notifications),
   * IDLE watchers holding a connection per mailbox (src/app/watchers.ts), or the poll alone.
   * The poll runs in every case as the safety net.
   */
  notify: z.enum(["push", "idle", "poll"]).default("push"),
  /**
   * Minutes between the poll's store checks of one mailbox (src/app/storePoll.ts), spread over
   * the minutes by the link's bucket. Default: 1 for `notify: "poll"` (the poll is how changes
   * arrive), 5 for push and IDLE (the poll only catches what a lost push missed).
   */
  pollMinutes: z.number().int().min(1).max(60).optional(),
  /** The store's product: picks the default connection budget (src/app/connectionBudget.ts). */
  vendor: z.enum(["generic", "dovecot", "exchange", "cisco-unity", "avaya", "mitel"]).default("generic"),
  /** Connections the store allows per user and per client address, across all instances. */
  connectionBudget: z.object({ perUser: z.number().int().min(1).max(1000).optional(), perAddress: z.number().int().min(1).max(25_000).optional() }).optional(),
  /** Optional: the voice system's URL for UC-location changes (signed POST, https only). */
  locationCallbackUrl: z.string().url().refine((u) => /^https:\/\//i.test(u), "must be https").optional(),
  /** The customer tenant this store belongs to, or `shared: true` (operator's decision). */
  tenantId: z.string().uuid("a tenant id (GUID)").optional(),
  shared: z.boolean().optional(),
  /** Larger stored messages are skipped (recorded on the link) without fetching their body. */
  maxMessageBytes: z.number().int().min(1024).max(150 * 1024 * 1024).optional(),
  /** The disaster-recovery store this one is mirrored to (docs/mirror.md): another endpoint, with its own auth, TLS and credentials. */
  backup: z.object({ endpointId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "an endpoint id") }).optional(),
}).refine((e) => !(e.tenantId && e.shared), { message: "either tenantId or shared, not both", path: ["shared"] });
export type EndpointConfig = z.input<typeof endpointSchema>;

const fileSchema = z.object({
  endpoints: z.array(endpointSchema).default([]),
  profiles: z.array(z.unknown()).default([]),
  /** Secrets by name, for endpoints that name theirs (the dev host's stand-in for Key Vault). */
  secrets: z.record(z.string(), z.string()).default({}),
});

export interface Directory {
  endpoint(id: string): ImapEndpoint;
  /** Who owns an endpoint or profile (undefined: nobody yet, or unknown). */
  owner(kind: "endpoint" | "profile", id: string): Owner;
  /** The endpoint's signing secrets (store pushes, UC-location callbacks); undefined when it has none yet. */
  signingKeys(endpointId: string): SigningKeys | undefined;
  /** Stored messages larger than this are skipped before their body is fetched. */
  maxMessageBytes(endpointId: string): number;
  profile(id: string): FeatureProfile;
  /** The profile a link runs with: its feature profile with the user's overrides applied. */
  linkProfile(link: { profileId: string; profileOverride?: Record<string, unknown> }): FeatureProfile;
  /** The endpoint's UC-location callback URL, when it has one. */
  locationCallback(id: string): string | undefined;
  /** The id of the disaster-recovery endpoint this one is mirrored to, if any (checked when loaded). */
  backupOf(id: string): string | undefined;
  /** For the CLI: endpoints without their secrets, and the profiles. */
  listEndpoints(): Array<{ id: string; host: string; port: number; tls: string; auth: string; maxConnections: number; locationCallbackUrl?: string; source: "stored" | "file"; passwordSecret?: string; owner: string; signing: "none" | "current" | "rotating"; refused?: string }>;
  listProfiles(): FeatureProfile[];
  has(kind: "endpoint" | "profile", id: string): boolean;
}

/** Secrets by name. */
export interface SecretSource {
  get(name: string): Promise<string>;
  /** The secret, or undefined when there is none by that name. */
  find(name: string): Promise<string | undefined>;
  /** Creates or replaces a secret (rotation; Key Vault Secrets Officer for whoever runs it). */
  set(name: string, value: string): Promise<void>;
}

export function fileSecrets(secretsFile: string): SecretSource {
  const find = async (name: string) => {
    const all = readFile(secretsFile).secrets;
    // Key Vault names compare case-insensitively; the file stands in for it.
    const key = Object.keys(all).find((k) => k.toLowerCase() === name.toLowerCase());
    return key === undefined ? undefined : all[key];
  };
  return {
    find,
    async get(name) {
      const v = await find(name);
      if (v === undefined) throw new ConnectorError("CONFIG_INVALID", `secret ${name} is not in the local secrets file`);
      return v;
    },
    async set(name, value) {
      const raw = JSON.parse(fs.readFileSync(secretsFile, "utf8")) as { secrets?: Record<string, string> };
      raw.secrets = { ...Object.fromEntries(Object.entries(raw.secrets ?? {}).filter(([k]) => k.toLowerCase() !== name.toLowerCase())), [name]: value };
      // Replace atomically, owner-only: the file holds passwords.
      const tmp = `${secretsFile}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify(raw, null, 2), { mode: 0o600 });
      fs.renameSync(tmp, secretsFile);
    },
  };
}

/** Key Vault with the managed identity (Key Vault Secrets User on the vault; infra/app/rbac.bicep). */
export function keyVaultSecrets(vaultUri: string, credential: TokenCredential): SecretSource {
  let client: Promise<import("@azure/keyvault-secrets").SecretClient> | undefined;
  const vault = () => (client ??= import("@azure/keyvault-secrets").then(({ SecretClient }) => new SecretClient(vaultUri, credential)));
  const source: SecretSource = {
    async find(name) {
      try {
        return await source.get(name);
      } catch (e) {
        // SecretNotFound (https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/get-secret/get-secret): none by that name.
        if (((e as ConnectorError).cause as { statusCode?: number } | undefined)?.statusCode === 404) return undefined;
        throw e;
      }
    },
    async set(name, value) {
      try {
        await (await vault()).setSecret(name, value, { contentType: "umconnect endpoint secret" });
      } catch (e) {
        const status = (e as { statusCode?: number }).statusCode;
        throw new ConnectorError("CONFIG_INVALID", `secret ${name} could not be written to Key Vault${status ? ` (HTTP ${status}; writing needs Key Vault Secrets Officer)` : ""}`, { cause: e, transient: status === undefined || status >= 500 || status === 429 });
      }
    },
    async get(name) {
      try {
        const s = await (await vault()).getSecret(name);
        if (!s.value) throw new Error("empty");
        return s.value;
      } catch (e) {
        const status = (e as { statusCode?: number }).statusCode;
        throw new ConnectorError("CONFIG_INVALID", `secret ${name} could not be read from Key Vault${status ? ` (HTTP ${status})` : ""}`, { cause: e, transient: status === undefined || status >= 500 || status === 429 });
      }
    },
  };
  return source;
}

function readFile(secretsFile: string): z.infer<typeof fileSchema> {
  try {
    return fileSchema.parse(JSON.parse(fs.readFileSync(secretsFile, "utf8")));
  } catch (e) {
    // Never echo the file: it holds passwords.
    throw new ConnectorError("CONFIG_INVALID", `secrets file ${secretsFile} is missing or invalid`, { cause: e instanceof z.ZodError ? new Error(e.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join(", ")) : undefined });
  }
}

export interface DirectorySources {
  secretsFile?: string;
  /** Stored configuration rows (already JSON-parsed). */
  stored: { endpoints: unknown[]; profiles: unknown[] };
  secrets?: SecretSource;
  /** UMC_ENVIRONMENT: plaintext IMAP is refused in Azure. */
  environment?: "azure" | "local" | "test";
}

/** Why an endpoint is refused as configured (its secrets are then never read), or undefined. */
export function endpointProblems(e: z.infer<typeof endpointSchema>, environment: DirectorySources["environment"]): string[] {
  const out: string[] = [];
  if (e.auth.passwordSecret) {
    const p = passwordSecretProblem(e.id, e.auth.passwordSecret);
    if (p) out.push(`auth.passwordSecret: ${p}`);
  }
  if (e.tls === "plaintext" && environment === "azure") out.push("tls: plaintext IMAP would send the super user's password in clear across networks; use implicit or starttls in Azure");
  return out;
}

export async function loadDirectory(src: DirectorySources): Promise<Directory> {
  const file = src.secretsFile ? readFile(src.secretsFile) : { endpoints: [], profiles: [], secrets: {} };
  const stored = src.stored.endpoints.map((e) => {
    const r = endpointSchema.safeParse(e);
    if (!r.success) throw new ConnectorError("CONFIG_INVALID", `stored endpoint ${(e as { id?: string })?.id ?? "?"} is invalid: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    return r.data;
  });
  const all = [...file.endpoints.map((e) => ({ e, source: "file" as const })), ...stored.map((e) => ({ e, source: "stored" as const }))];
  const endpoints = new Map<string, ImapEndpoint>();
  const meta = new Map<string, { e: z.infer<typeof endpointSchema>; source: "stored" | "file"; keys?: SigningKeys; refused?: string }>();
  for (const { e, source } of all) {
    if (meta.has(e.id)) throw new ConnectorError("CONFIG_INVALID", `endpoint ${e.id} is defined twice (stored configuration and the local secrets file)`);
    const problems = endpointProblems(e, src.environment);
    if (problems.length) { meta.set(e.id, { e, source, refused: problems.join("; ") }); continue; }
    // passwordPerLink without an endpoint password: "" here; each link brings its own (src/app/credentials.ts).
    const password = e.auth.password ?? (e.auth.passwordSecret ? await secretOf(e.auth.passwordSecret, src.secrets, e.id) : "");
    const signingName = signingSecretName(e.id);
    const signing = signingName && src.secrets ? await src.secrets.find(signingName) : undefined;
    const { passwordSecret: _n, password: _p, passwordPerLink, ...rest } = e.auth;
    endpoints.set(e.id, {
      id: e.id, host: e.host, port: e.port, tls: e.tls, auth: { ...rest, password } as ImapAuth, maxConnections: e.maxConnections,
      authRetrySeconds: e.authRetrySeconds, loginsAtOnce: e.loginsAtOnce, silenceTimeoutMs: e.silenceTimeoutSeconds * 1000, ...(passwordPerLink ? { passwordPerLink } : {}),
      connectionBudget: { ...VENDOR_BUDGETS[e.vendor], ...e.connectionBudget }, notify: e.notify, pollMinutes: e.pollMinutes ?? (e.notify === "poll" ? 1 : 5),
      caBundle: e.caBundle ?? (e.caBundlePath ? fs.readFileSync(e.caBundlePath, "utf8") : undefined),
    });
    meta.set(e.id, { e, source, keys: signing === undefined ? undefined : parseSigningKeys(signing) });
  }
  for (const { e } of meta.values()) if (e.backup) backupProblem(e.id, e.backup.endpointId, meta);
  const profiles = new Map<string, FeatureProfile>([[DEFAULT_PROFILE.id, DEFAULT_PROFILE]]);
  for (const p of [...file.profiles, ...src.stored.profiles]) {
    const x = parseProfile(p);
    if (profiles.has(x.id) && x.id !== DEFAULT_PROFILE.id) throw new ConnectorError("CONFIG_INVALID", `feature profile ${x.id} is defined twice`);
    profiles.set(x.id, x);
  }
  const profile = (id: string) => {
    const p = profiles.get(id);
    if (!p) throw new ConnectorError("NOT_FOUND", `unknown feature profile ${id}`);
    return p;
  };
  return {
    locationCallback: (id) => meta.get(id)?.e.locationCallbackUrl,
    backupOf: (id) => meta.get(id)?.e.backup?.endpointId,
    listEndpoints: () => [...meta.values()].map(({ e, source, keys, refused }) => ({
      id: e.id, host: e.host, port: e.port, tls: e.tls, auth: e.auth.mode, maxConnections: e.maxConnections, locationCallbackUrl: e.locationCallbackUrl, source,
      ...(e.auth.passwordSecret ? { passwordSecret: e.auth.passwordSecret } : {}), owner: ownerText(ownerOf(e)),
      signing: !keys ? "none" as const : keys.previous ? "rotating" as const : "current" as const, ...(refused ? { refused } : {}),
    })),
    listProfiles: () => [...profiles.values()],
    has: (kind, id) => (kind === "endpoint" ? meta.has(id) : profiles.has(id)),
    owner: (kind, id) => {
      if (kind === "profile") { const p = profiles.get(id); return p && ownerOf(p); }
      const m = meta.get(id);
      return m && ownerOf(m.e);
    },
    signingKeys: (id) => meta.get(id)?.keys,
    maxMessageBytes: (id) => meta.get(id)?.e.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    endpoint(id) {
      const refused = meta.get(id)?.refused;
      if (refused) throw new ConnectorError("CONFIG_INVALID", `voice-store endpoint ${id} is refused as configured: ${refused}`, { endpoint: id, transient: false });
      const e = endpoints.get(id);
      if (!e) throw new ConnectorError("NOT_FOUND", `unknown voice-store endpoint ${id}`, { endpoint: id });
      return e;
    },
    profile,
    linkProfile: (link) => effectiveProfile(profile(link.profileId), link.profileOverride),
  };
}

/** A backup must be another known endpoint of the same owner, and not mirror back to its production (a loop). */
function backupProblem(id: string, backupId: string, meta: Map<string, { e: z.infer<typeof endpointSchema> }>): void {
  const fail = (why: string) => { throw new ConnectorError("CONFIG_INVALID", `endpoint ${id}: backup.endpointId ${backupId} ${why}`, { endpoint: id, transient: false }); };
  if (backupId === id) fail("is the endpoint itself");
  const b = meta.get(backupId);
  if (!b) fail("is not a configured endpoint");
  if (b!.e.backup?.endpointId === id) fail(`mirrors back to ${id} (a loop): only one direction at a time; swap them at failback (docs/mirror.md)`);
  const p = meta.get(id)!.e;
  if (!p.shared && !b!.e.shared && p.tenantId !== b!.e.tenantId) fail("belongs to another tenant");
}

async function secretOf(name: string, secrets: SecretSource | undefined, endpointId: string): Promise<string> {
  if (!secrets) throw new ConnectorError("CONFIG_INVALID", `endpoint ${endpointId} names secret ${name}, but no secret source is configured (UMC_KEY_VAULT_URI or UMC_SECRETS_FILE)`, { endpoint: endpointId });
  return secrets.get(name);
}
