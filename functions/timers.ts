import type { InvocationContext, Timer } from "@azure/functions";
import type { FunctionDefinition } from "./definition.js";

// src/ is imported on first use (functions/index.ts: only the wiring loads at start).
const deps = async () => (await import("../src/app/deps.js")).getDeps();
/** A timer lists no link: it enqueues one message per shard, which workers expand (src/app/schedule.ts). */
const fanOut = async (reason: "poll" | "fast-read" | "reconcile" | "renewals") => (await import("../src/app/schedule.js")).fanOutSchedule(await deps(), reason);

/** Subscription upkeep: links whose subscriptions are missing, due, duplicated or not working
 *  get an upkeep run (src/app/subscriptions.ts); a refused one is tried again every 5 minutes. */
export const renewSubscriptionsFunction: FunctionDefinition = {
  name: "renewSubscriptions",
  trigger: { kind: "timer", schedule: "0 */5 * * * *" },
  handler: async (_t: Timer, _ctx: InvocationContext) => { await fanOut("renewals"); },
};

/** Stores that cannot notify: a cheap CONDSTORE check per mailbox every minute. */
export const pollStoresFunction: FunctionDefinition = {
  name: "pollStores",
  trigger: { kind: "timer", schedule: "30 * * * * *" },
  handler: async () => { await fanOut("poll"); },
};

/** Mailboxes holding unread voice messages: a delta check every few seconds keeps the lamp honest. */
export const fastReadCheckFunction: FunctionDefinition = {
  name: "fastReadCheck",
  trigger: { kind: "timer", schedule: "*/5 * * * * *" },
  handler: async () => { await fanOut("fast-read"); },
};

/** Safety net: a full comparison of both sides, which also corrects MWI drift; links whose user
 *  was gone are looked at again; bound Entra groups' joins and leaves are applied. */
export const reconcileFunction: FunctionDefinition = {
  name: "reconcile",
  trigger: { kind: "timer", schedule: "0 17 * * * *" },
  handler: async () => {
    await fanOut("reconcile");
    await (await import("../src/app/userLifecycle.js")).recheckGoneUsers(await deps());
    await (await import("../src/admin/groupLinks.js")).runGroupBindings(await deps());
  },
};

/** Alerts to a person (webhook) and the link/alert gauges of the telemetry. */
export const alertsFunction: FunctionDefinition = {
  name: "alerts",
  trigger: { kind: "timer", schedule: "0 */5 * * * *" },
  handler: async () => { await (await import("../src/admin/alerts.js")).evaluateAlerts(await deps()); },
};

/**
 * IDLE watchers for stores without a push hook (endpoint notify: "idle"). Two timers take
 * turns every other minute, each watcher holding its shards a little longer than a minute
 * (UMC_WATCH_HOLD_SECONDS), so the next one is already waiting to take each shard over: the
 * host never overlaps runs of one timer function, and this way no minute goes unwatched.
 */
export const watchStoresEvenFunction: FunctionDefinition = {
  name: "watchStoresEven",
  trigger: { kind: "timer", schedule: "0 */2 * * * *" },
  handler: async () => { const d = await deps(); await (await import("../src/app/watchers.js")).runWatcher(d, { holdMs: d.config.sync.watchHoldSeconds * 1000 }); },
};
export const watchStoresOddFunction: FunctionDefinition = {
  name: "watchStoresOdd",
  trigger: { kind: "timer", schedule: "0 1-59/2 * * * *" },
  handler: async () => { const d = await deps(); await (await import("../src/app/watchers.js")).runWatcher(d, { holdMs: d.config.sync.watchHoldSeconds * 1000 }); },
};
