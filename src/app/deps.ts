/**
 * The composition root: builds the long-lived dependencies once per cold start (config,
 * logger, state store, queue, directory of endpoints, Graph clients per tenant) and hands
 * them to the function handlers. Functions call getDeps(); tests and the dev host may
 * install their own with setDeps().
 */
import crypto from "node:crypto";
import { QueueClient } from "@azure/storage-queue";
import { getConfig, type Config } from "../config.js";
import { createLogger, type Logger } from "../log.js";
import { StateStore } from "../state/stateStore.js";
import { ConnectorError } from "../errors.js";
import type { TokenCredential } from "@azure/core-auth";
import { msalTokenSource, type AppCredential, type TokenSource } from "../graph/auth.js";
import { GraphClient } from "../graph/client.js";
import { fileSecrets, keyVaultSecrets, loadDirectory, type Directory, type SecretSource } from "./endpoints.js";
import { ReplayGuard } from "../webhooks/storeNotifications.js";
import type { AdminAuth } from "../admin/adminAuth.js";

export interface Deps {
  config: Config;
  log: Logger;
  state: StateStore;
  syncQueue: QueueClient;
  /** Endpoints (secrets resolved) and profiles; reloaded at most every minute, so changes made
   *  with the CLI and rotated secrets take effect without a restart. */
  directory: (need?: { endpointId?: string; profileId?: string }) => Promise<Directory>;
  /** Forget the loaded directory (after a configuration change in this process). */
  reloadDirectory: () => void;
  /** Where secrets named by endpoints are read: Key Vault in Azure, the local file in the dev host. */
  secrets: () => SecretSource | undefined;
  graph: (tenantId: string) => GraphClient;
  /** App-only tokens per customer tenant. */
  tokens: () => TokenSource;
  /** Identifies this process as a lease owner. */
  workerId: string;
  storeReplay: ReplayGuard;
  /** Who may use the admin API (Entra tokens in Azure, the local token in the dev host). */
  adminAuth: () => AdminAuth;
}

let current: Deps | undefined;

const DIRECTORY_TTL_MS = 60_000;

/** Audience of a managed-identity token used as a federated client assertion. */
const FEDERATION_SCOPE = "api://AzureADTokenExchange/.default";

/**
 * The user-assigned managed identity, with @azure/identity loaded on the first token rather than
 * at cold start (it costs about 300 ms of CPU; `npm run bench -- coldstart`).
 */
function managedIdentity(clientId: string): TokenCredential {
  let credential: Promise<TokenCredential> | undefined;
  return {
    getToken: async (scopes, options) => {
      credential ??= import("@azure/identity").then(({ ManagedIdentityCredential }) => new ManagedIdentityCredential({ clientId }));
      return (await credential).getToken(scopes, options);
    },
  };
}

/**
 * A workstation's Entra sign-in (Azure CLI, azd, environment, ...; DefaultAzureCredential), for
 * the operator CLI: the deployment grants the deploying principal the Table, Queue and Key Vault
 * data roles (infra/app/rbac.bicep). Loaded on the first token.
 */
export function workstationCredential(managedIdentityClientId?: string): TokenCredential {
  let credential: Promise<TokenCredential> | undefined;
  return {
    getToken: async (scopes, options) => {
      credential ??= import("@azure/identity").then(({ DefaultAzureCredential }) => new DefaultAzureCredential(managedIdentityClientId ? { managedIdentityClientId } : {}));
      return (await credential).getToken(scopes, options);
    },
  };
}

export function buildDeps(config: Config, log: Logger = createLogger({ level: config.logLevel }), overrides: { tokens?: TokenSource; credential?: TokenCredential } = {}): Deps {
  const s = config.storage;
  // In Azure: no keys anywhere. The user-assigned identity reaches storage, and it also signs
  // the app in to customer tenants as a federated credential (graph-facts.md section 7). The
  // operator CLI passes its own credential for storage and Key Vault.
  const identity = config.identity.managedIdentityClientId ? managedIdentity(config.identity.managedIdentityClientId) : undefined;
  const mi = overrides.credential ?? identity;
  if (!s.connectionString && !mi) throw new ConnectorError("CONFIG_INVALID", "storage by service URI needs UMC_MANAGED_IDENTITY_CLIENT_ID (in Azure) or a signed-in operator (the CLI)");
  let directory: { at: number; value: Promise<Directory> } | undefined;
  let adminAuth: AdminAuth | undefined;
  let realAdminAuth: Promise<AdminAuth> | undefined;
  let tokens = overrides.tokens;
  const graphs = new Map<string, GraphClient>();
  const tokenSource = () => {
    if (tokens) return tokens;
    const id = config.identity;
    if (!id.clientId) throw new ConnectorError("CONFIG_INVALID", "UMC_CLIENT_ID is not set");
    const credential: AppCredential | undefined = id.clientCertPath ? { kind: "certificate", certPath: id.clientCertPath }
      : identity ? { kind: "assertion", getAssertion: async () => {
        const t = await identity.getToken(FEDERATION_SCOPE);
        if (!t) throw new ConnectorError("GRAPH_AUTH_FAILED", "the managed identity returned no token for the federated credential", { transient: true });
        return t.token;
      } }
      : id.clientSecret ? { kind: "secret", secret: id.clientSecret }
      : undefined;
    if (!credential) throw new ConnectorError("CONFIG_INVALID", "no app credential: set UMC_CLIENT_CERT_PATH or UMC_MANAGED_IDENTITY_CLIENT_ID");
    tokens = msalTokenSource({ clientId: id.clientId, authorityHost: id.authorityHost, credential });
    return tokens;
  };
  const stateStore = s.connectionString
    ? new StateStore({ connectionString: s.connectionString, tablePrefix: s.tablePrefix })
    : new StateStore({ tableServiceUri: s.tableServiceUri, credential: mi, tablePrefix: s.tablePrefix });
  const secretSource: SecretSource | undefined = config.secrets.secretsFile ? fileSecrets(config.secrets.secretsFile)
    : config.secrets.keyVaultUri && mi ? keyVaultSecrets(config.secrets.keyVaultUri, mi) : undefined;
  const loadDirectoryNow = (): Promise<Directory> => {
    const previous = directory;
    const value = (async () => loadDirectory({
      secretsFile: config.secrets.secretsFile,
      stored: { endpoints: await stateStore.listConfig("endpoint"), profiles: await stateStore.listConfig("profile") },
      secrets: secretSource,
      environment: config.environment,
    }))();
    // A failed reload (storage or Key Vault away) keeps serving the last good directory; with
    // none, the next call tries again.
    directory = { at: Date.now(), value: previous ? value.catch((e: unknown) => { log.warn("directory.reload.failed", { error: e }); return previous.value; }) : value };
    if (!previous) value.catch(() => { directory = undefined; });
    return directory.value;
  };
  return {
    config,
    log,
    state: stateStore,
    syncQueue: s.connectionString
      ? new QueueClient(s.connectionString, s.syncQueue)
      : new QueueClient(`${s.queueServiceUri!.replace(/\/$/, "")}/${s.syncQueue}`, mi!),
    directory: async (need) => {
      const fresh = directory && Date.now() - directory.at < DIRECTORY_TTL_MS;
      const d = fresh ? await directory!.value : await loadDirectoryNow();
      // A link to an endpoint or profile added a moment ago by another process: look again, once.
      const missing = (need?.endpointId !== undefined && !d.has("endpoint", need.endpointId)) || (need?.profileId !== undefined && !d.has("profile", need.profileId));
      return missing && fresh && Date.now() - directory!.at > 2000 ? loadDirectoryNow() : d;
    },
    reloadDirectory: () => { directory = undefined; },
    secrets: () => secretSource,
    tokens: tokenSource,
    graph: (tenantId) => {
      let g = graphs.get(tenantId);
      if (!g) {
        g = new GraphClient({ baseUrl: config.graph.baseUrl, tenantId, tokens: tokenSource(), maxConcurrencyPerMailbox: config.graph.maxConcurrencyPerMailbox, requestTimeoutMs: config.graph.requestTimeoutMs });
        graphs.set(tenantId, g);
      }
      return g;
    },
    workerId: `${process.pid}-${crypto.randomBytes(4).toString("hex")}`,
    storeReplay: new ReplayGuard(),
    // jose (token checks) loads with the first admin request, not on the webhook path.
    adminAuth: () => (adminAuth ??= {
      authenticate: async (authorization) => (await (realAdminAuth ??= import("../admin/adminAuth.js").then((m) => m.createAdminAuth(config)))).authenticate(authorization),
    }),
  };
}

export function getDeps(): Deps {
  current ??= buildDeps(getConfig());
  return current;
}

export function setDeps(deps: Deps | undefined): void {
  current = deps;
}
