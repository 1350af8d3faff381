/**
 * Cold start of the function app (issue 14): a fresh Node process per sample, as a new Flex
 * Consumption instance starts one.
 *  - module load: `import("dist/functions/index.js")`, what the Functions worker does before it
 *    can run anything (target < 300 ms);
 *  - first notification answered: from the process's start to the 202 of one genuine Graph
 *    change notification through the real graphNotifications function, storage in Azurite
 *    (target < 1 s: Graph drops notifications not answered within 3 s,
 *    https://learn.microsoft.com/graph/change-notifications-delivery-webhooks).
 * The app is built first (npm run build), so the figures are for what is deployed. CPU time is
 * printed too: on a shared machine wall time mostly measures the neighbours.
 */
import { execFile, execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite } from "../test/harness/azurite.js";
import { makeClientState, newNonce } from "../src/webhooks/clientState.js";
import type { Figure } from "./report.js";

export const title = "Cold start: module load and first Graph notification answered";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SAMPLES = Number(process.env.UMC_BENCH_COLDSTART_SAMPLES ?? 5);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Sample { loadMs: number; loadCpuMs: number; answeredSinceStartMs: number; answerCpuMs: number; status: number }

export async function run(): Promise<Figure[]> {
  execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" });
  const az = await startAzurite();
  try {
    const queue = new QueueClient(az.connectionString, "sync-mailbox");
    await queue.createIfNotExists();
    const secret = "bench-webhook-secret-0123456789-abcdefghij";
    const samples: Sample[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const linkId = `L-cold-${i}`;
      const notification = JSON.stringify({ value: [{ subscriptionId: `sub-${i}`, clientState: makeClientState(secret, linkId, "0c0ffee0-0000-4000-8000-000000000001", newNonce()), changeType: "created", resource: "Users/u/Messages/m", tenantId: "0c0ffee0-0000-4000-8000-000000000001", resourceData: { id: `m-${i}` } }] });
      const env = {
        PATH: process.env.PATH ?? "", UMC_ENVIRONMENT: "local", UMC_STORAGE_CONNECTION_STRING: az.connectionString, UMC_WEBHOOK_SECRET: secret,
        UMC_LOG_LEVEL: "error", UMC_BENCH_NOTIFICATION: notification,
      };
      const out = await new Promise<string>((resolve, reject) => execFile(process.execPath, [path.join(root, "bench/coldstart-worker.mjs")], { cwd: root, env, encoding: "utf8" }, (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout))));
      const sample = JSON.parse(out.trim().split("\n").pop()!) as Sample;
      if (sample.status !== 202) throw new Error(`the notification was answered ${sample.status}, not 202`);
      samples.push(sample);
    }
    // Each genuine notification left its run request on the queue: the answer did the real work.
    const queued = (await queue.getProperties()).approximateMessagesCount ?? 0;
    if (queued < SAMPLES) throw new Error(`${queued} queue messages for ${SAMPLES} notifications`);
    return [
      { name: `module load, median of ${SAMPLES} processes`, value: median(samples.map((s) => s.loadMs)), unit: "ms", reference: 300, better: "lower" },
      { name: "module load, CPU time", value: median(samples.map((s) => s.loadCpuMs)), unit: "ms", reference: 300, better: "lower" },
      { name: "first notification answered after process start", value: median(samples.map((s) => s.answeredSinceStartMs)), unit: "ms", reference: 1000, better: "lower" },
      { name: "first notification, CPU time (load included)", value: median(samples.map((s) => s.answerCpuMs)), unit: "ms", reference: 1000, better: "lower" },
    ];
  } finally {
    await az.stop();
  }
}
