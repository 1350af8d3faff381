/**
 * Graph webhook answer time (issue 13): Graph expects an answer within 3 s, then retries,
 * throttles and finally drops notifications for a slow endpoint
 * (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks).
 * Change notifications with a genuine clientState are POSTed to the dev host's
 * /api/graph/notifications while the state store (tables and queue, through a TCP proxy) is
 * healthy, slow (500 ms added to every call) and down (nothing answers). Figures: p50 and p99
 * answer time per case (target p99 < 1 s healthy, < 3 s in every case) and the share of 202.
 */
import { startWorld } from "../test/e2e/world.js";
import { startStorageProxy, type StorageMode } from "../test/harness/storageProxy.js";
import { buildDeps, setDeps } from "../src/app/deps.js";
import { loadConfig } from "../src/config.js";
import { createLogger } from "../src/log.js";
import type { Figure } from "./report.js";

export const title = "Graph webhook answer time under storage faults";

const N = 120;
const CONCURRENCY = 4;

const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!; };

export async function run(): Promise<Figure[]> {
  const w = await startWorld({ users: ["7001"], quiet: true, timers: false, queueWorkers: false });
  const proxy = await startStorageProxy(w.az.connectionString);
  try {
    const { linkId, userId } = await w.link("7001", "hook@contoso.test");
    // The subscription upkeep runs in the queue worker, which is off here: run it once by hand.
    const { keepSubscriptions } = await import("../src/app/subscriptions.js");
    await keepSubscriptions(w.deps, (await w.deps.state.getLink(linkId))!, { linkId, kind: "subscriptions", reason: "admin" });
    const sub = [...w.sim.subscriptions.values()].find((s) => s.userId === userId && s.kind === "messages")!;
    // The HTTP functions use a connector whose storage goes through the proxy.
    const deps = buildDeps(loadConfig({ ...w.env, UMC_STORAGE_CONNECTION_STRING: proxy.connectionString }), createLogger({ level: "error" }));
    setDeps(deps);
    const body = (i: number) => JSON.stringify({ value: [{ subscriptionId: sub.id, subscriptionExpirationDateTime: sub.expirationDateTime, changeType: "updated", resource: `Users/${userId}/Messages/m${i}`, resourceData: { id: `m${i}` }, clientState: sub.clientState, tenantId: sub.tenantId }] });
    const measure = async (mode: StorageMode) => {
      proxy.setMode(mode);
      // Warm-up (connections, the table clients' first open), not counted.
      for (let i = 0; i < 5; i++) await (await fetch(`${w.host.url}/api/graph/notifications`, { method: "POST", headers: { "content-type": "application/json" }, body: body(-1 - i) })).arrayBuffer();
      const times: number[] = [];
      let accepted = 0;
      let next = 0;
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next < N) {
          const i = next++;
          const t0 = performance.now();
          const res = await fetch(`${w.host.url}/api/graph/notifications`, { method: "POST", headers: { "content-type": "application/json" }, body: body(i) });
          await res.arrayBuffer();
          times.push(performance.now() - t0);
          if (res.status === 202) accepted++;
          // Clear the "already queued" mark so each request does the full path.
          if (mode.kind === "healthy") await w.deps.state.clearQueued(linkId);
        }
      }));
      return { times, accepted };
    };
    const figures: Figure[] = [];
    for (const [name, mode, target] of [["healthy", { kind: "healthy" }, 1000], ["slow 500 ms per call", { kind: "slow", delayMs: 500 }, 3000], ["down", { kind: "down" }, 3000]] as const) {
      const r = await measure(mode);
      figures.push({ name: `storage ${name}: answer p50`, value: pct(r.times, 50), unit: "ms", reference: target, better: "lower" });
      figures.push({ name: `storage ${name}: answer p99`, value: pct(r.times, 99), unit: "ms", reference: target, better: "lower" });
      figures.push({ name: `storage ${name}: answered 202 (durable)`, value: (100 * r.accepted) / N, unit: "%", reference: mode.kind === "down" ? 0 : 100, better: mode.kind === "down" ? "lower" : "higher" });
    }
    proxy.setMode({ kind: "healthy" });
    return figures;
  } finally {
    setDeps(w.deps);
    await proxy.stop();
    await w.stop();
  }
}
