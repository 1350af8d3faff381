/** Liveness with real dependency checks: storage tables and the sync queue answer. */
import type { Deps } from "./deps.js";

export interface HealthReport {
  status: "ok" | "degraded";
  version: string;
  checks: { stateStore: "ok" | "error"; syncQueue: "ok" | "error" };
}

export const VERSION = "0.1.0";

export async function checkHealth(deps: Deps): Promise<HealthReport> {
  const [stateStore, syncQueue] = await Promise.all([
    deps.state.getTenant("health-probe").then(() => "ok" as const, () => "error" as const),
    deps.syncQueue.getProperties().then(() => "ok" as const, () => "error" as const),
  ]);
  return { status: stateStore === "ok" && syncQueue === "ok" ? "ok" : "degraded", version: VERSION, checks: { stateStore, syncQueue } };
}
