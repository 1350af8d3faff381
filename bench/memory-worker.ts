/**
 * Runs one full (reconcile) sync of a link in a process of its own, so its peak RSS is the
 * connector's alone, not the simulator's or the dev host's. Config comes from UMC_* variables.
 */
import { getConfig } from "../src/config.js";
import { buildDeps } from "../src/app/deps.js";
import { runSyncRequest } from "../src/app/voicemail.js";
import { createLogger } from "../src/log.js";
import { peakRssBytes } from "./report.js";

const linkId = process.argv[2]!;
const deps = buildDeps(getConfig(), createLogger({ level: "error" }));
const t = performance.now();
const result = await runSyncRequest(deps, { linkId, reason: "reconcile" });
// The kernel's record of the peak (getrusage ru_maxrss), not a sample that can miss a spike.
process.stdout.write(JSON.stringify({ peakRssBytes: peakRssBytes(), ms: performance.now() - t, status: result.status, actions: result.status === "ran" ? result.report.actions : undefined }) + "\n");
process.exit(0);
