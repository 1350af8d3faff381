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
import { ManagedIdentityCredential } from "@azure/identity";
import { msalTokenSource, type AppCredential, type TokenSource } from "../graph/auth.js";
import { GraphClient } from "../graph/client.js";
import { fileSecrets, keyVaultSecrets, loadDirectory, type Directory, type SecretSource } from "./endpoints.js";
import { ReplayGuard } from "../webhooks/storeNotifications.js";
import { createAdminAuth, type AdminAuth } from "../admin/adminAuth.js";

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

export function buildDeps(config: Config, log: Logger = createLogger({ level: config.logLevel }), overrides: { tokens?: TokenSource } = {}): Deps {
  const s = config.storage;
  // In Azure: no keys anywhere. The user-assigned identity reaches storage, and it also signs
  // the app in to customer tenants as a federated credential (graph-facts.md section 7).
  const mi = config.identity.managedIdentityClientId ? new ManagedIdentityCredential({ clientId: config.identity.managedIdentityClientId }) : undefined;
  if (!s.connectionString && !mi) throw new ConnectorError("CONFIG_INVALID", "storage by service URI needs UMC_MANAGED_IDENTITY_CLIENT_ID");
  let directory: { at: number; value: Promise<Directory> } | undefined;
  let adminAuth: AdminAuth | undefined;
  let tokens = overrides.tokens;
  const graphs = new Map<string, GraphClient>();
  const tokenSource = () => {
    if (tokens) return tokens;
    const id = config.identity;
    if (!id.clientId) throw new ConnectorError("CONFIG_INVALID", "UMC_CLIENT_ID is not set");
    const credential: AppCredential | undefined = id.clientCertPath ? { kind: "certificate", certPath: id.clientCertPath }
      : mi ? { kind: "assertion", getAssertion: async () => (await mi.getToken(FEDERATION_SCOPE)).token }
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
    adminAuth: () => (adminAuth ??= createAdminAuth(config)),
  };
}

export function getDeps(): Deps {
  current ??= buildDeps(getConfig());
  return current;
}

export function setDeps(deps: Deps | undefined): void {
  current = deps;
}
