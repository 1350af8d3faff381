/**
 * Runs one sync in a connector process of its own (bench/memory-worker.mjs, on the built app as
 * deployed), against the world this bench process started: its figures (peak RSS, event loop,
 * wall time) are the connector's alone, as in Azure, where the Graph simulator's work is not in
 * the same process.
 */
import { execFile, execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { World } from "../test/e2e/world.js";

export interface ConnectorProcessResult {
  peakRssBytes: number;
  ms: number;
  /** CPU time (user + system) the worker spent in the run. */
  cpuMs: number;
  /** The worker's longest event loop delay during the run. */
  loopMaxMs: number;
  /** Table write requests the worker made (counted as bench/report.ts stateWrites does). */
  stateWrites: number;
  status: string;
  actions?: Record<string, number>;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
let built = false;

/** The built app (dist/, as `npm run build` makes it), once per bench process. */
function build(): void {
  if (built) return;
  execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" });
  built = true;
}

/** bench/memory-worker.mjs with `args`, configured for the world `w` started; its last line of output, parsed. */
async function worker<T>(w: World, args: string[], leaseSeconds = w.deps.config.sync.leaseSeconds): Promise<T> {
  build();
  const cfg = w.deps.config;
  const env = {
    ...process.env, UMC_ENVIRONMENT: "test", UMC_STORAGE_CONNECTION_STRING: cfg.storage.connectionString, UMC_CLIENT_ID: cfg.identity.clientId,
    UMC_CLIENT_SECRET: "app-secret-for-tests", UMC_AUTHORITY_HOST: cfg.identity.authorityHost, UMC_GRAPH_BASE_URL: cfg.graph.baseUrl,
    UMC_SECRETS_FILE: cfg.secrets.secretsFile, UMC_LEASE_SECONDS: String(leaseSeconds),
  };
  const profile = process.env.UMC_BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.UMC_BENCH_CPU_PROF}`] : [];
  // Asynchronous: the simulator the child talks to lives in this process.
  const out = await new Promise<string>((resolve, reject) => execFile(process.execPath, [...profile, path.join(root, "bench/memory-worker.mjs"), ...args], { env, encoding: "utf8", maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
    if (err) reject(new Error(`${err.message}\n${stderr}`));
    else { if (process.env.UMC_BENCH_TRACE) process.stderr.write(stderr); resolve(stdout); }
  }));
  return JSON.parse(out.trim().split("\n").at(-1)!) as T;
}

export async function runInConnectorProcess(w: World, linkId: string, kind: "voicemail" | "contacts", options: { leaseSeconds?: number; reason?: "admin" | "reconcile" } = {}): Promise<ConnectorProcessResult> {
  return worker<ConnectorProcessResult>(w, [linkId, kind, ...(options.reason ? [options.reason] : [])], options.leaseSeconds);
}

/**
 * Graph requests per second a connector process reaches against this world's simulator when it
 * does nothing but keep the mailbox's 4 contact creates in flight (on a scratch user): the
 * throttle ceiling as this machine delivers it. The nominal one (4 in flight / 20 ms) leaves out
 * the simulator's own time per request (about 1.3 ms) and the TLS round trip between the two
 * processes: on the 2-CPU bench machine a bare fetch loop reached 0.83-0.84 of it.
 */
export async function measuredGraphCeiling(w: World, tenantId: string, requests = 2000): Promise<number> {
  const user = w.sim.addUser(tenantId, { userPrincipalName: `ceiling-${Date.now()}@contoso.test` });
  const out = await worker<{ requestsPerSecond: number }>(w, ["ceiling", tenantId, user.id, String(requests)]);
  return out.requestsPerSecond;
}
