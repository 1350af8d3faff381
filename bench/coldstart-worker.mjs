// Run by bench/coldstart.bench.ts as a fresh `node` process (plain JS: no tsx in the way):
// loads the built app as the Functions runtime does (dist/functions/index.js), then answers one
// genuine Graph change notification through the graphNotifications function (clientState
// check, queued mark in Table storage, one queue message). Prints its timings as JSON.
// performance.now() counts from the process's start.
const dist = new URL("../dist/", import.meta.url);
const started = performance.now();
const cpu0 = process.cpuUsage();
await import(new URL("functions/index.js", dist).href);
const loaded = performance.now();
const loadCpu = process.cpuUsage(cpu0);
const { functionDefinitions } = await import(new URL("functions/registry.js", dist).href);
const graph = functionDefinitions.find((d) => d.name === "graphNotifications");
const body = process.env.UMC_BENCH_NOTIFICATION;
// A real HttpRequest, as the worker hands it over (the route reads the body within its limit).
const { default: azf } = await import("@azure/functions");
const request = new azf.HttpRequest({ method: "POST", url: "https://umconnect.example.test/api/graph/notifications", headers: { "content-type": "application/json" }, body: { string: body } });
const answer = await graph.handler(request, {});
const answered = performance.now();
const total = process.cpuUsage(cpu0);
console.log(JSON.stringify({
  loadMs: loaded - started, loadCpuMs: (loadCpu.user + loadCpu.system) / 1000,
  answeredSinceStartMs: answered, answerCpuMs: (total.user + total.system) / 1000, status: answer.status,
}));
process.exit(0);
