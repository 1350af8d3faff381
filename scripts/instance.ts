/**
 * One more function-app instance on this machine, in a process of its own: the dev host with
 * the real function list, config from the UMC_* environment. Queue triggers on, timers off
 * (Azure runs a timer function on one instance only). The chaos and load suites start several
 * of these to race workers, kill them mid-run and measure each one's memory.
 *
 * Prints one JSON line {"ready":true,"url":...} when serving; on SIGTERM it stops taking
 * messages, finishes what it runs and prints {"peakRssBytes":...} (SIGKILL is the crash case).
 */
import { functionDefinitions } from "../functions/registry.js";
import { getDeps } from "../src/app/deps.js";
import { startDevHost } from "../src/host/devHost.js";

const deps = getDeps();
const host = await startDevHost({
  definitions: functionDefinitions,
  storageConnectionString: deps.config.storage.connectionString!,
  logger: deps.log.child({ instance: deps.workerId }),
  timers: false,
  queues: { maxPollingIntervalMs: 50, visibilityTimeoutSeconds: 1 },
});
process.stdout.write(JSON.stringify({ ready: true, url: host.url, workerId: deps.workerId }) + "\n");
const stop = async () => {
  await host.stop();
  // The kernel's record of the peak (getrusage ru_maxrss, KiB), not a sample that can miss a spike.
  process.stdout.write(JSON.stringify({ peakRssBytes: process.resourceUsage().maxRSS * 1024 }) + "\n");
  process.exit(0);
};
process.once("SIGTERM", () => void stop());
process.once("SIGINT", () => void stop());
