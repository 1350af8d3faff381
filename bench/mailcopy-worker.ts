/**
 * Runs one e-mail-on-the-phone run of a link in a process of its own (bench/mailcopy.bench.ts),
 * so its peak RSS is the connector's alone, not the simulator's or the dev host's.
 */
import { getConfig } from "../src/config.js";
import { buildDeps } from "../src/app/deps.js";
import { runMailRequest } from "../src/app/mail.js";
import { createLogger } from "../src/log.js";
import { peakRssBytes } from "./report.js";

const linkId = process.argv[2]!;
const deps = buildDeps(getConfig(), createLogger({ level: "error" }));
const t = performance.now();
const result = await runMailRequest(deps, { linkId, kind: "mail", reason: "admin" });
process.stdout.write(JSON.stringify({ peakRssBytes: peakRssBytes(), ms: performance.now() - t, status: result.status, report: result.status === "ran" ? result.report : undefined }) + "\n");
process.exit(0);
