/**
 * The shape of one function definition. Every function is declared once, as data, and
 * registered from one list (functions/registry.ts) by both the Azure Functions runtime
 * (functions/index.ts) and the local dev host (src/host/devHost.ts).
 */
import type { HttpHandler, InvocationContext, StorageQueueHandler, TimerHandler } from "@azure/functions";

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export type FunctionDefinition =
  /** maxBodyBytes: the largest request body the route reads (0: none); larger ones get 413 before they are read (src/security/httpBody.ts). */
  | { name: string; trigger: { kind: "http"; route: string; methods: HttpMethod[]; authLevel: "anonymous" | "function"; maxBodyBytes: number }; handler: HttpHandler }
  | { name: string; trigger: { kind: "queue"; queueName: string; connection: string }; handler: StorageQueueHandler }
  | { name: string; trigger: { kind: "timer"; schedule: string; runOnStartup?: boolean }; handler: TimerHandler };

/** The subset of @azure/functions' `app` that registration uses (so tests can pass their own). */
export interface Registrar {
  http(name: string, options: { route: string; methods: HttpMethod[]; authLevel: "anonymous" | "function"; handler: HttpHandler }): void;
  storageQueue(name: string, options: { queueName: string; connection: string; handler: StorageQueueHandler }): void;
  timer(name: string, options: { schedule: string; runOnStartup?: boolean; handler: TimerHandler }): void;
}

export function registerAll(app: Registrar, definitions: readonly FunctionDefinition[]): void {
  for (const d of definitions) {
    switch (d.trigger.kind) {
      case "http": app.http(d.name, { route: d.trigger.route, methods: d.trigger.methods, authLevel: d.trigger.authLevel, handler: d.handler as HttpHandler }); break;
      case "queue": app.storageQueue(d.name, { queueName: d.trigger.queueName, connection: d.trigger.connection, handler: d.handler as StorageQueueHandler }); break;
      case "timer": app.timer(d.name, { schedule: d.trigger.schedule, runOnStartup: d.trigger.runOnStartup, handler: d.handler as TimerHandler }); break;
    }
  }
}

/**
 * Starts `start` (telemetry) without delaying an HTTP answer: an HTTP function answers first and
 * starts it just after, a queue or timer function starts it before its run (its metrics need
 * the provider). Graph drops change notifications not answered within 3 s
 * (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks), and the Azure
 * Monitor distro alone takes about a second to load.
 */
export function withStartFirst(d: FunctionDefinition, start: () => Promise<unknown>, afterAnswerMs = 500): FunctionDefinition {
  const h = d.handler as (input: unknown, ctx: InvocationContext) => Promise<unknown>;
  const handler = d.trigger.kind === "http"
    ? async (input: unknown, ctx: InvocationContext) => {
      try { return await h(input, ctx); } finally { setTimeout(() => void start(), afterAnswerMs); }
    }
    : async (input: unknown, ctx: InvocationContext) => { await start(); return h(input, ctx); };
  return { ...d, handler } as FunctionDefinition;
}
