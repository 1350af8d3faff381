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

export async function runInConnectorProcess(w: World, linkId: string, kind: "voicemail" | "contacts", leaseSeconds = w.deps.config.sync.leaseSeconds): Promise<ConnectorProcessResult> {
  if (!built) {
    // dist/ as `npm run build` makes it (once per bench process).
    execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" });
    built = true;
  }
  const cfg = w.deps.config;
  const env = {
    ...process.env, UMC_ENVIRONMENT: "test", UMC_STORAGE_CONNECTION_STRING: cfg.storage.connectionString, UMC_CLIENT_ID: cfg.identity.clientId,
    UMC_CLIENT_SECRET: "app-secret-for-tests", UMC_AUTHORITY_HOST: cfg.identity.authorityHost, UMC_GRAPH_BASE_URL: cfg.graph.baseUrl,
    UMC_SECRETS_FILE: cfg.secrets.secretsFile, UMC_LEASE_SECONDS: String(leaseSeconds),
  };
  // Asynchronous: the simulator the child talks to lives in this process.
  const out = await new Promise<string>((resolve, reject) => execFile(process.execPath, [...(process.env.UMC_BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.UMC_BENCH_CPU_PROF}`] : []), path.join(root, "bench/memory-worker.mjs"), linkId, kind], { env, encoding: "utf8", maxBuffer: 1 << 20 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : (process.env.UMC_BENCH_TRACE && process.stderr.write(stderr), resolve(stdout)))));
  return JSON.parse(out.trim().split("\n").at(-1)!) as ConnectorProcessResult;
}
