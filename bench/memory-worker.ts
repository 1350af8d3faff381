/**
 * Runs one full (reconcile) sync of a link in a process of its own, so its peak RSS is the
 * connector's alone, not the simulator's or the dev host's. Config comes from UMC_* variables.
 */
import { getConfig } from "../src/config.js";
import { buildDeps } from "../src/app/deps.js";
import { runSyncRequest } from "../src/app/voicemail.js";
import { createLogger } from "../src/log.js";

const linkId = process.argv[2]!;
let peak = process.memoryUsage().rss;
const sample = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
const deps = buildDeps(getConfig(), createLogger({ level: "error" }));
const t = performance.now();
const result = await runSyncRequest(deps, { linkId, reason: "reconcile" });
clearInterval(sample);
peak = Math.max(peak, process.memoryUsage().rss);
process.stdout.write(JSON.stringify({ peakRssBytes: peak, ms: performance.now() - t, status: result.status, actions: result.status === "ran" ? result.report.actions : undefined }) + "\n");
process.exit(0);
