// Run by bench/connectorProcess.ts as a fresh `node` process on the built app (dist/, what is
// deployed: plain JS, no tsx in the way): one sync of a link in a process of its own, so its
// peak RSS and event loop are the connector's alone, not the simulator's or the dev host's; in
// Azure, Graph is at the other end of the network. Config comes from UMC_* variables.
//   memory-worker.mjs <linkId> [voicemail|contacts] [reason]
//                                 one voicemail run (a full one: reason reconcile by default) or
//                                 contacts run (reason admin by default; a new link's first sync)
//   memory-worker.mjs ceiling <tenantId> <userId> <n>   (below)
// Prints one line of JSON.
import { monitorEventLoopDelay } from "node:perf_hooks";

const dist = new URL("../dist/src/", import.meta.url);
const load = (p) => import(new URL(p, dist).href);
const { getConfig } = await load("config.js");
const { buildDeps } = await load("app/deps.js");
const { runSyncRequest } = await load("app/voicemail.js");
const { runContactsRequest } = await load("app/contacts.js");
const { createLogger } = await load("log.js");
const { tableOps } = await load("state/tables.js");

const deps = buildDeps(getConfig(), createLogger({ level: "error" }));

//   memory-worker.mjs ceiling <tenantId> <userId> <n>
// The Graph ceiling as this machine has it: n contact creates through the connector's Graph
// client, kept at the mailbox's 4 in flight (src/graph/client.ts) and nothing else to do.
if (process.argv[2] === "ceiling") {
  const [, , , tenantId, userId, n] = process.argv;
  const graph = deps.graph(tenantId);
  const body = { displayName: "Ceiling", givenName: "Ceiling", surname: "Probe", businessPhones: ["+49 30 1111"], emailAddresses: [{ address: "probe@example.test", name: "Probe" }] };
  let left = Number(n);
  const lane = async () => { while (left-- > 0) await graph.request({ method: "POST", url: `/users/${userId}/contacts`, body, mailbox: userId }); };
  const t = performance.now();
  await Promise.all(Array.from({ length: deps.config.graph.maxConcurrencyPerMailbox }, lane));
  process.stdout.write(JSON.stringify({ requestsPerSecond: Number(n) / ((performance.now() - t) / 1000) }) + "\n");
  process.exit(0);
}

const linkId = process.argv[2];
const kind = process.argv[3] ?? "voicemail";
const reason = process.argv[4] ?? (kind === "contacts" ? "admin" : "reconcile");
const mb = (n) => (n / 1048576).toFixed(0);
// UMC_BENCH_TRACE=1: the process's memory once a second on stderr (where the peak comes from).
const trace = process.env.UMC_BENCH_TRACE
  ? setInterval(() => { const m = process.memoryUsage(); process.stderr.write(`memory-worker: rss ${mb(m.rss)} MB, heap ${mb(m.heapUsed)}/${mb(m.heapTotal)} MB, external ${mb(m.external)} MB\n`); }, 1000)
  : undefined;
const loop = monitorEventLoopDelay({ resolution: 20 });
loop.enable();
const cpu0 = process.cpuUsage();
const t = performance.now();
const result = kind === "contacts"
  ? await runContactsRequest(deps, { linkId, kind: "contacts", reason })
  : await runSyncRequest(deps, { linkId, reason });
const ms = performance.now() - t;
loop.disable();
clearInterval(trace);
// Table requests that write, as bench/report.ts stateWrites counts them in the bench process.
const stateWrites = ["upsertEntity", "updateEntity", "createEntity", "deleteEntity", "submitTransaction"].reduce((n, m) => n + (tableOps.get(m) ?? 0), 0);
process.stdout.write(JSON.stringify({
  // The kernel's record of the peak (getrusage ru_maxrss, in KB), not a sample that can miss a spike.
  peakRssBytes: process.resourceUsage().maxRSS * 1024, ms, cpuMs: ((c) => (c.user + c.system) / 1000)(process.cpuUsage(cpu0)), stateWrites, loopMaxMs: loop.max / 1e6, status: result.status,
  actions: result.status === "ran" ? result.report?.actions : undefined,
}) + "\n");
process.exit(0);
