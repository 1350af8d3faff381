/**
 * The whole test world for end-to-end tests and benchmarks: Azurite, a private Dovecot pushing
 * signed notifications to the dev host, the Graph simulator, and the dev host serving the
 * real function list over https (Graph only calls https endpoints).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ImapFlow } from "imapflow";
import { startAzurite, type AzuriteHandle } from "../harness/azurite.js";
import { startDovecot, type DovecotHandle } from "../harness/dovecot.js";
import { ensureTestCerts } from "../harness/certs.js";
import { startGraphSimulator, type GraphSimulator, type SimOptions } from "../graph-sim/index.js";
import { startDevHost, type DevHost } from "../../src/host/devHost.js";
import { functionDefinitions } from "../../functions/registry.js";
import { buildDeps, setDeps, type Deps } from "../../src/app/deps.js";
import { disabledFunctions, loadConfig } from "../../src/config.js";
import { createLogger, memoryLogger, type Logger } from "../../src/log.js";
import { enqueueLinkKinds } from "../../src/app/schedule.js";
import { StateStore, type Lease } from "../../src/state/stateStore.js";
import { runsMade } from "../../src/app/syncWorker.js";

export const TENANT = "0c0ffee0-0000-4000-8000-000000000001";
export const APP = "a0a0a0a0-0000-4000-8000-000000000002";
export const ENDPOINT = "voice-1";
/** The backup endpoint of ENDPOINT in a world started with `backupStore` (docs/mirror.md). */
export const BACKUP_ENDPOINT = "voice-1-dr";
/** The dev host's local admin token in the test world (not a secret). */
export const ADMIN_TOKEN = "admin-token-for-the-test-world-0123456789";
/** The dev host's master key in the test world (not a secret): runs a function on demand. */
export const MASTER_KEY = "master-key-for-the-test-world-0123456789";
/**
 * The fast read check and every safety-net timer. A world started with these in
 * `disabledFunctions` has only the path under test left: Graph change notifications, the store's
 * push, or one timer the test fires itself with `w.runFunction(name)`. Without this, the fast
 * read check (every 5 s, interval 1 s here) repairs whatever a broken path leaves undone within
 * the tests' waits.
 */
export const SAFETY_NET_TIMERS = ["fastReadCheck", "pollStores", "reconcile", "renewSubscriptions"] as const;

export interface World {
  az: AzuriteHandle;
  dc: DovecotHandle;
  /** The disaster-recovery store (`backupStore`): endpoint BACKUP_ENDPOINT, the same users. */
  bc?: DovecotHandle;
  sim: GraphSimulator;
  host: DevHost;
  deps: Deps;
  log: Logger & { lines?: unknown[] };
  /** The UMC_* settings the world's connector runs with (for more instances in child processes). */
  env: Record<string, string>;
  /** Links voice mailbox <-> Exchange user and runs the first sync. */
  link(voiceMailbox: string, upn: string, profileId?: string): Promise<{ linkId: string; userId: string }>;
  /** Resolves once every queued run has been handled (the queue's approximate count includes
   *  the messages being worked on, which are invisible). Throws after timeoutMs. */
  queueDrained(timeoutMs?: number): Promise<void>;
  /** Runs a timer function now, through the host's master-key endpoint (works when it is disabled, as in Azure). */
  runFunction(name: string): Promise<void>;
  imap(user: string): Promise<ImapFlow>;
  /** \Seen per UID of the mailbox's INBOX on the voice store (what the phone's lamp reads). */
  seenOnStore(user: string): Promise<Record<number, boolean>>;
  /** Another worker, whose clock runs a minute ahead, takes the lease `key` (it sees ours as expired). */
  takeLeaseOver(key: string): Promise<Lease>;
  stop(): Promise<void>;
}

export interface WorldOptions {
  users: string[];
  sim?: SimOptions;
  quiet?: boolean;
  /** The fast read interval (1 s in the test world; "default": the connector's own default, for benchmarks). */
  fastReadSeconds?: number | "default";
  timers?: boolean;
  /** Queue work in this process (off when child-process instances do it: load test). */
  queueWorkers?: boolean;
  /** Azurite on disk, so the suite can restart it (state store unavailable for a while). */
  persistentStorage?: boolean;
  /** Dovecot's mail_max_userip_connections (the world default is generous). */
  maxUserIpConnections?: number;
  /** A store without a master user: links need their own passwords (src/app/credentials.ts). */
  noMasterUser?: boolean;
  /** The store speaks TLS (implicit or STARTTLS) with a certificate from its own CA, which only
   *  the endpoint's caBundle trusts (not NODE_EXTRA_CA_CERTS). */
  storeTls?: "implicit" | "starttls";
  /** Fixed ports for the local stack (random when omitted). */
  ports?: { azurite?: { blob: number; queue: number; table: number }; host?: number; imap?: number };
  logger?: Logger;
  /** Feature profiles written to the secrets file (the default profile always exists). */
  profiles?: unknown[];
  /** More UMC_* settings for the connector (e.g. a shorter Graph request timeout). */
  env?: Record<string, string>;
  /** Extra endpoint settings (e.g. locationCallbackUrl). */
  endpoint?: Record<string, unknown>;
  /** Functions whose trigger is off (the platform's AzureWebJobs.<name>.Disabled setting), e.g. SAFETY_NET_TIMERS. */
  disabledFunctions?: readonly string[];
  /** Dovecot's push notifications to the dev host (default on); off, only poll and reconcile see the store. */
  storePush?: boolean;
  /** More dovecot.conf lines (e.g. a higher imap process_limit for 1,000 watched mailboxes). */
  dovecotConf?: string;
  /**
   * A second Dovecot as ENDPOINT's disaster-recovery backup (src/app/mirror.ts), with the same
   * users, logged in to another way than production: SASL PLAIN with an authorization identity
   * by default (production uses the "user*master" separator). `extraConf`: e.g. a quota.
   */
  backupStore?: { auth?: "sasl-authzid" | "master-separator"; extraConf?: string; clockOffsetSeconds?: number };
}

/** Runs of `kind` the world's in-process workers have made for a link so far (src/app/syncWorker.ts). */
export const runsOf = (kind: string, linkId: string): number => runsMade.get(`${kind}|${linkId}`) ?? 0;

/**
 * The queue is empty, stays quiet for `pauseMs` (the pushes and notifications a run's writes
 * cause arrive meanwhile) and is empty again: every run those triggers start has been made.
 */
export async function settle(w: World, pauseMs = 1500): Promise<void> {
  await w.queueDrained();
  await new Promise((r) => setTimeout(r, pauseMs));
  await w.queueDrained();
}

/**
 * The reasons of the voicemail runs whose report shows `action` (e.g. "setImapSeen"), from the
 * world's memory log (the `voicemail.sync.done` line): which trigger did the work.
 */
export function runReasons(w: World, linkId: string, action: string, trigger?: string): string[] {
  const lines = (w.log as { lines?: Array<Record<string, unknown>> }).lines;
  if (!lines) throw new Error("runReasons needs the world's memory log (not quiet, no custom logger)");
  return lines.filter((l) => l.event === "voicemail.sync.done" && l.linkId === linkId && Number(l[action] ?? 0) > 0).map((l) => String(l.reason))
    // A run that met another one in progress hands its work to a coalesced "follow-up"; with every
    // other trigger off, that follow-up can only carry the path under test.
    .map((r) => (trigger && r === "follow-up" ? trigger : r));
}

/**
 * libfaketime (Debian package faketime, scripts/setup.sh) in the store's processes: its clock
 * runs this far ahead (or behind). Dovecot clears its children's environment except what
 * import_environment names (Dovecot 2.3 settings: "import_environment").
 */
function faketimeConf(offsetSeconds: number): string {
  return `\nimport_environment = $import_environment LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 FAKETIME=${offsetSeconds >= 0 ? "+" : ""}${offsetSeconds}s\n`;
}

export async function startWorld(options: WorldOptions = { users: ["4711"] }): Promise<World> {
  const certs = ensureTestCerts();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "umc-world-"));
  const webhookSecret = "w".repeat(8) + "-webhook-secret-for-tests-0123456789";
  const storeSecret = "s".repeat(8) + "-store-secret-for-tests-0123456789";
  const log = options.logger ?? (options.quiet ? createLogger({ level: "error" }) : memoryLogger("info"));
  const az = await startAzurite({ ports: options.ports?.azurite, persistent: options.persistentStorage });
  const sim = await startGraphSimulator({ notificationRetryScale: 0.01, ...options.sim });
  sim.addTenant({ tenantId: TENANT, apps: [{ clientId: APP, clientSecret: "app-secret-for-tests", roles: ["Mail.ReadWrite", "User.Read.All", "Calendars.Read", "Contacts.ReadWrite", "GroupMember.Read.All"] }] });
  // The platform's own switch, parsed where every setting is parsed (src/config.ts).
  const platform = Object.fromEntries((options.disabledFunctions ?? []).map((name) => [`AzureWebJobs.${name}.Disabled`, "true"]));
  const host = await startDevHost({ disabledFunctions: disabledFunctions(platform), masterKey: MASTER_KEY,  definitions: functionDefinitions, storageConnectionString: az.connectionString, logger: log, tls: { keyPath: certs.serverKeyPath, certPath: certs.serverCertPath }, queues: { maxPollingIntervalMs: 50, visibilityTimeoutSeconds: 1 }, timers: options.timers ?? true, queueTriggers: options.queueWorkers ?? true, port: options.ports?.host });
  const users = Object.fromEntries(options.users.map((u) => [u, `pw-${u}`]));
  const storeCerts = options.storeTls ? ensureTestCerts(path.join(path.dirname(certs.caCertPath), "..", "store-certs")) : undefined;
  const dc = await startDovecot({ users, port: options.ports?.imap, maxUserIpConnections: options.maxUserIpConnections, noMasterUser: options.noMasterUser, ...(storeCerts ? { tls: { keyPath: storeCerts.serverKeyPath, certPath: storeCerts.serverCertPath, starttls: options.storeTls === "starttls" } } : {}), push: options.storePush === false ? undefined : { url: `${host.url}/api/store/notifications/${ENDPOINT}`, secret: storeSecret, endpointId: ENDPOINT }, extraConf: `ssl_client_ca_file = ${certs.caCertPath}\n${options.dovecotConf ?? ""}` });
  const secretsFile = path.join(dir, "secrets.json");
  // The world's store and profiles belong to its tenant (unless a test says otherwise), and the
  // store signs its pushes with its own secret (docs/security.md).
  const owned = (x: Record<string, unknown>) => ("tenantId" in x || "shared" in x ? x : { ...x, tenantId: TENANT });
  // With storeTls, the backup speaks implicit TLS with a certificate of the same store CA.
  const bc = options.backupStore ? await startDovecot({ users, maxUserIpConnections: options.maxUserIpConnections, extraConf: `${options.backupStore.extraConf ?? ""}${options.backupStore.clockOffsetSeconds ? faketimeConf(options.backupStore.clockOffsetSeconds) : ""}`, ...(storeCerts ? { tls: { keyPath: storeCerts.serverKeyPath, certPath: storeCerts.serverCertPath } } : {}) }) : undefined;
  const backupEndpoint = bc ? [owned({ id: BACKUP_ENDPOINT, host: bc.host, port: bc.port, tls: storeCerts ? "implicit" : "plaintext", ...(storeCerts ? { caBundle: fs.readFileSync(storeCerts.caCertPath, "utf8") } : {}), maxConnections: 16, vendor: "dovecot", auth: { mode: options.backupStore!.auth ?? "sasl-authzid", masterUser: bc.master.user, password: bc.master.pass } })] : [];
  fs.writeFileSync(secretsFile, JSON.stringify({
    endpoints: [owned({ id: ENDPOINT, host: dc.host, port: dc.port, tls: options.storeTls ?? "plaintext", ...(storeCerts ? { caBundle: fs.readFileSync(storeCerts.caCertPath, "utf8") } : {}), maxConnections: 16, auth: { mode: "master-separator", masterUser: dc.master.user, password: dc.master.pass }, ...(bc ? { backup: { endpointId: BACKUP_ENDPOINT } } : {}), ...(options.storePush === false ? { notify: "poll" } : {}), ...options.endpoint }), ...backupEndpoint],
    profiles: (options.profiles ?? []).map((p) => owned(p as Record<string, unknown>)),
    secrets: { [`${ENDPOINT}--signing`]: storeSecret },
  }), { mode: 0o600 });
  const env: Record<string, string> = {
    UMC_ENVIRONMENT: "test", UMC_STORAGE_CONNECTION_STRING: az.connectionString, UMC_CLIENT_ID: APP, UMC_CLIENT_SECRET: "app-secret-for-tests",
    UMC_AUTHORITY_HOST: sim.origin, UMC_GRAPH_BASE_URL: sim.origin, UMC_PUBLIC_BASE_URL: host.url, UMC_WEBHOOK_SECRET: webhookSecret,
    UMC_STORE_NOTIFY_SECRET: storeSecret, UMC_SECRETS_FILE: secretsFile, UMC_ADMIN_TOKEN: ADMIN_TOKEN, UMC_LEASE_SECONDS: "30",
    ...(options.fastReadSeconds === "default" ? {} : { UMC_FAST_READ_INTERVAL_SECONDS: String(options.fastReadSeconds ?? 1) }),
    // Receivers in the test world listen on loopback (a lab allow-list; refused in Azure).
    UMC_OUTBOUND_ALLOW_HOSTS: "127.0.0.1,localhost",
    ...platform, ...options.env,
  };
  const config = loadConfig(env);
  const deps = buildDeps(config, log);
  setDeps(deps);
  await deps.syncQueue.createIfNotExists();
  await deps.state.upsertTenant({ tenantId: TENANT, displayName: "Contoso", grantedRoles: ["Mail.ReadWrite"], status: "active", consentedAt: new Date().toISOString() });
  const openImap = async (user: string) => {
    const c = new ImapFlow({ host: dc.host, port: dc.port, secure: false, auth: { user, pass: `pw-${user}` }, logger: false });
    await c.connect();
    await c.mailboxOpen("INBOX");
    return c;
  };
  return {
    az, dc, bc, sim, host, deps, log, env,
    async link(voiceMailbox, upn, profileId = "default") {
      const user = sim.addUser(TENANT, { userPrincipalName: upn, proxyAddresses: [`SMTP:${upn}`] });
      const linkId = `L-${voiceMailbox}`;
      await deps.state.createLink({ linkId, tenantId: TENANT, endpointId: ENDPOINT, voiceMailbox, userId: user.id, upn, profileId, state: "enabled" });
      await enqueueLinkKinds(deps, { linkId, profileId }, "admin");
      return { linkId, userId: user.id };
    },
    async queueDrained(timeoutMs = 20_000) {
      const end = Date.now() + timeoutMs;
      while ((await deps.syncQueue.getProperties()).approximateMessagesCount) {
        if (Date.now() > end) throw new Error(`the sync queue still holds runs after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async runFunction(name) {
      const r = await fetch(`${host.url.replace(/\/$/, "")}/admin/functions/${name}`, { method: "POST", headers: { "x-functions-key": MASTER_KEY, "content-type": "application/json" }, body: JSON.stringify({ input: "" }) });
      if (r.status !== 202) throw new Error(`run ${name}: HTTP ${r.status}`);
    },
    imap: openImap,
    async seenOnStore(user) {
      const c = await openImap(user);
      try {
        const out: Record<number, boolean> = {};
        for await (const m of c.fetch("1:*", { uid: true, flags: true })) out[m.uid] = m.flags?.has("\\Seen") ?? false;
        return out;
      } finally { await c.logout(); }
    },
    async takeLeaseOver(key) {
      const other = new StateStore({ connectionString: az.connectionString, tablePrefix: deps.config.storage.tablePrefix }, () => Date.now() + 60_000);
      for (let attempt = 0; ; attempt++) {
        try {
          return await other.acquireLease(key, "other-worker", 600);
        } catch (e) {
          if (attempt >= 20) throw e; // our renewal raced the read-then-replace: read again
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
    async stop() {
      await host.stop();
      setDeps(undefined);
      await Promise.all([dc.stop(), bc?.stop(), sim.stop(), az.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
