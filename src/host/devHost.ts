/**
 * The local dev host: serves the same function definitions the Azure Functions runtime
 * registers (functions/registry.ts), because Functions Core Tools cannot be downloaded
 * everywhere. It reproduces the host behaviour the connector relies on:
 *  - HTTP: routes under /api/<route> with {param} segments, request body cap;
 *  - Storage queues: polling with the host.json interval, base64 messages (the host's default
 *    messageEncoding), dequeueCount in trigger metadata, and after maxDequeueCount failures
 *    the message moves to "<queue>-poison"
 *    (https://learn.microsoft.com/en-us/azure/azure-functions/functions-bindings-storage-queue-trigger#poison-messages);
 *  - timers: NCRONTAB schedules (src/host/ncrontab.ts);
 *  - `AzureWebJobs.<name>.Disabled` (config.host.disabledFunctions): the trigger is ignored, yet
 *    the function still runs on demand through the master-key admin endpoint
 *    `POST /admin/functions/<name>` (202), as in Azure
 *    (https://learn.microsoft.com/en-us/azure/azure-functions/disable-function,
 *    https://learn.microsoft.com/en-us/azure/azure-functions/functions-manually-run-non-http).
 */
import http from "node:http";
import https from "node:https";
import fs from "node:fs";
import crypto from "node:crypto";
import type { AddressInfo } from "node:net";
import { createRequire } from "node:module";
import type { HttpResponseInit, InvocationContext as Ctx, HttpRequest as Req, Timer } from "@azure/functions";
import { QueueClient } from "@azure/storage-queue";
import type { FunctionDefinition } from "../../functions/definition.js";
import type { Logger } from "../log.js";
import { parseSchedule } from "./ncrontab.js";

// Plain Node ESM sees only part of this CJS bundle's named exports (env-recipes section 4).
const azf = createRequire(import.meta.url)("@azure/functions") as typeof import("@azure/functions");

export const MAX_HTTP_BODY_BYTES = 10 * 1024 * 1024;

export interface HostJsonQueues {
  maxPollingIntervalMs: number;
  batchSize: number;
  /** The host fetches the next batch once this few messages are still being processed. */
  newBatchThreshold: number;
  maxDequeueCount: number;
  visibilityTimeoutSeconds: number;
}

export function readHostJsonQueues(path = new URL("../../host.json", import.meta.url)): HostJsonQueues {
  const q = (JSON.parse(fs.readFileSync(path, "utf8")) as { extensions?: { queues?: Record<string, unknown> } }).extensions?.queues ?? {};
  const span = (v: unknown, dflt: number) => {
    if (typeof v !== "string") return dflt;
    const [h, m, s] = v.split(":").map(Number);
    return ((h ?? 0) * 3600 + (m ?? 0) * 60 + (s ?? 0)) * 1000;
  };
  return {
    maxPollingIntervalMs: span(q.maxPollingInterval, 60_000),
    batchSize: typeof q.batchSize === "number" ? q.batchSize : 16,
    newBatchThreshold: typeof q.newBatchThreshold === "number" ? q.newBatchThreshold : Math.floor((typeof q.batchSize === "number" ? q.batchSize : 16) / 2),
    maxDequeueCount: typeof q.maxDequeueCount === "number" ? q.maxDequeueCount : 5,
    visibilityTimeoutSeconds: span(q.visibilityTimeout, 0) / 1000,
  };
}

export interface DevHostOptions {
  definitions: readonly FunctionDefinition[];
  storageConnectionString: string;
  logger: Logger;
  port?: number;
  host?: string;
  /** Serve https with this key/cert (Graph only calls https notification URLs). */
  tls?: { keyPath: string; certPath: string };
  queues?: Partial<HostJsonQueues>;
  /** Timers off (tests drive timer functions themselves; Azure runs a timer on one instance only). */
  timers?: boolean;
  /** Queue triggers off (an HTTP-only front while other instances do the queue work). */
  queueTriggers?: boolean;
  /** Functions whose trigger is ignored (the platform's AzureWebJobs.<name>.Disabled setting). */
  disabledFunctions?: readonly string[];
  /** The host's master key: `POST /admin/functions/<name>` with `x-functions-key` runs a non-HTTP function now. */
  masterKey?: string;
  /**
   * How long a received message stays invisible (seconds, default 30), renewed every half of
   * it while its function runs: only a host that died lets it reappear. The Functions host does
   * the same with 10 minutes (WebJobs SDK UpdateQueueMessageVisibilityCommand;
   * https://github.com/Azure/azure-webjobs-sdk/issues/1040). Without the renewal a run longer
   * than this was delivered a second time while the first still held the link's lease.
   */
  messageHoldSeconds?: number;
}

export interface DevHost {
  url: string;
  port: number;
  stop(): Promise<void>;
}

function routeMatcher(route: string): (path: string) => Record<string, string> | undefined {
  const names: string[] = [];
  const pattern = route.split("/").map((seg) => {
    const m = seg.match(/^\{(\w+)\??\}$/);
    if (m) { names.push(m[1]!); return "([^/]+)"; }
    return seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }).join("/");
  const re = new RegExp(`^/api/${pattern}/?$`, "i");
  return (path) => {
    const m = path.match(re);
    if (!m) return undefined;
    return Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1]!)]));
  };
}

/** What an oversized request may still send after its 413 before the connection is cut. */
const MAX_DISCARDED_BYTES = 4 * MAX_HTTP_BODY_BYTES;

/**
 * Reads a request body up to MAX_HTTP_BODY_BYTES. A larger one (declared or sent) is answered
 * 413 at once and the rest of it is read and discarded, so the client, still writing, reads the
 * 413 instead of a reset (RFC 9110 section 15.5.14); the connection stays usable. Only a client
 * that keeps sending past MAX_DISCARDED_BYTES has its connection dropped. Event-driven on
 * purpose: leaving a `for await` loop over the request destroys its socket.
 */
function readBody(req: http.IncomingMessage, res: http.ServerResponse): Promise<Buffer[] | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    const refuse = () => {
      refused = true;
      chunks.length = 0;
      res.writeHead(413, { "content-type": "application/json" }).end('{"error":"PAYLOAD_TOO_LARGE"}');
      resolve(undefined);
    };
    if (Number(req.headers["content-length"] ?? 0) > MAX_HTTP_BODY_BYTES) refuse();
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (refused) { if (size > MAX_HTTP_BODY_BYTES + MAX_DISCARDED_BYTES) req.destroy(); return; }
      if (size > MAX_HTTP_BODY_BYTES) { refuse(); return; }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(refused ? undefined : chunks));
    req.on("error", (e) => (refused ? undefined : reject(e)));
    req.on("close", () => resolve(undefined)); // the client went away mid-body: nothing to answer
  });
}

export async function startDevHost(options: DevHostOptions): Promise<DevHost> {
  const log = options.logger.child({ component: "devhost" });
  const inFlight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>) => { inFlight.add(p); p.finally(() => inFlight.delete(p)).catch(() => undefined); return p; };
  const context = (functionName: string, triggerMetadata: Record<string, unknown> = {}): Ctx =>
    new azf.InvocationContext({
      invocationId: crypto.randomUUID(), functionName, triggerMetadata,
      logHandler: (level, ...args) => {
        const message = args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ");
        (level === "error" ? log.error : level === "warning" ? log.warn : log.debug)("function.log", { functionName, message });
      },
    });

  // ---- HTTP ---------------------------------------------------------------------------
  const httpDefs = options.definitions.flatMap((d) => (d.trigger.kind === "http" ? [{ d, match: routeMatcher(d.trigger.route), methods: d.trigger.methods }] : []));
  const disabled = new Set(options.disabledFunctions ?? []);
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "localhost"}`);
    const manual = url.pathname.match(/^\/admin\/functions\/([A-Za-z0-9_-]+)$/);
    if (manual && req.method === "POST") { await runOnDemand(manual[1]!, req, res); return; }
    let params: Record<string, string> | undefined;
    const route = httpDefs.find((r) => (params = r.match(url.pathname)) !== undefined);
    if (!route || !params) { res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}'); return; }
    if (!route.methods.includes((req.method ?? "GET").toUpperCase() as never)) { res.writeHead(405).end(); return; }
    const chunks = await readBody(req, res);
    if (!chunks) return; // answered 413
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : v;
    const request: Req = new azf.HttpRequest({ method: req.method, url: url.toString(), headers, params, body: chunks.length ? { bytes: Buffer.concat(chunks) } : undefined });
    let result: HttpResponseInit;
    try {
      result = await (route.d.handler as (r: Req, c: Ctx) => Promise<HttpResponseInit>)(request, context(route.d.name));
    } catch (e) {
      log.error("function.failed", { functionName: route.d.name, error: e });
      res.writeHead(500, { "content-type": "application/json" }).end('{"error":"internal error"}');
      return;
    }
    const out = new azf.HttpResponse(result);
    const outHeaders: Record<string, string> = {};
    out.headers.forEach((v, k) => { outHeaders[k] = v; });
    res.writeHead(out.status, outHeaders);
    res.end(out.body ? Buffer.from(await out.arrayBuffer()) : undefined);
  };
  // Manual run of a non-HTTP function: master key only (any other key 404s, like Azure), 202 at once.
  const runOnDemand = async (name: string, req: http.IncomingMessage, res: http.ServerResponse) => {
    for await (const _ of req) { /* the body ({"input": ...}) is not used by timer functions */ }
    const d = options.definitions.find((f) => f.name === name && f.trigger.kind === "timer");
    const key = req.headers["x-functions-key"];
    const keyOk = !!options.masterKey && typeof key === "string" && key.length === options.masterKey.length && crypto.timingSafeEqual(Buffer.from(key), Buffer.from(options.masterKey));
    if (!d || !keyOk) { res.writeHead(404).end(); return; }
    void track((d.handler as (t: Timer, c: Ctx) => Promise<void>)({ isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: new Date().toISOString(), next: new Date().toISOString(), lastUpdated: new Date().toISOString() } }, context(d.name))
      .catch((e) => log.error("timer.failed", { functionName: d.name, error: e })));
    res.writeHead(202).end();
  };
  const listener = (req: http.IncomingMessage, res: http.ServerResponse) => { void track(handle(req, res).catch((e) => { log.error("devhost.http.failed", { error: e }); if (!res.headersSent) res.writeHead(500).end(); })); };
  const server = options.tls
    ? https.createServer({ key: fs.readFileSync(options.tls.keyPath), cert: fs.readFileSync(options.tls.certPath) }, listener)
    : http.createServer(listener);
  await new Promise<void>((resolve, reject) => { server.once("error", reject); server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve()); });
  const port = (server.address() as AddressInfo).port;

  // ---- queues -------------------------------------------------------------------------
  const q = { ...readHostJsonQueues(), ...options.queues };
  const hold = Math.max(options.messageHoldSeconds ?? 30, q.visibilityTimeoutSeconds, 1);
  let stopping = false;
  const pollers: Array<Promise<void>> = [];
  for (const d of options.definitions) {
    if (d.trigger.kind !== "queue" || options.queueTriggers === false || disabled.has(d.name)) continue;
    const queueName = d.trigger.queueName;
    const client = new QueueClient(options.storageConnectionString, queueName);
    const poison = new QueueClient(options.storageConnectionString, `${d.trigger.queueName}-poison`);
    await client.createIfNotExists();
    const handler = d.handler as (m: unknown, c: Ctx) => Promise<unknown>;
    pollers.push((async () => {
      let idle = 100; // the host backs off exponentially up to maxPollingInterval when idle
      // Like the Functions host, a new batch is fetched as soon as the messages still being
      // processed are down to newBatchThreshold: one slow message never holds the others back
      // (https://learn.microsoft.com/en-us/azure/azure-functions/functions-bindings-storage-queue#concurrency).
      let processing = 0;
      let slotFreed: (() => void) | undefined;
      while (!stopping) {
        if (processing > q.newBatchThreshold) {
          await new Promise<void>((r) => { slotFreed = r; setTimeout(r, 100); });
          continue;
        }
        let got = 0;
        try {
          const batch = await client.receiveMessages({ numberOfMessages: Math.min(32, q.batchSize), visibilityTimeout: hold });
          got = batch.receivedMessageItems.length;
          processing += got;
          batch.receivedMessageItems.forEach((m) => track((async () => {
            const text = Buffer.from(m.messageText, "base64").toString("utf8");
            let payload: unknown = text;
            try { payload = JSON.parse(text); } catch { /* the host passes non-JSON as a string */ }
            // Each visibility update gives the message a new pop receipt; the last one deletes it.
            let receipt = m.popReceipt;
            let renewing: Promise<void> = Promise.resolve();
            const renewal = setInterval(() => {
              renewing = renewing.then(() => client.updateMessage(m.messageId, receipt, undefined, hold)).then((r) => { receipt = r.popReceipt ?? receipt; }, (e) => log.warn("queue.hold.failed", { functionName: d.name, messageId: m.messageId, error: e }));
            }, (hold * 1000) / 2);
            const settle = async () => { clearInterval(renewal); await renewing; };
            try {
              try {
                await handler(payload, context(d.name, { id: m.messageId, dequeueCount: m.dequeueCount, insertionTime: m.insertedOn?.toISOString(), popReceipt: m.popReceipt }));
              } finally { await settle(); }
              await client.deleteMessage(m.messageId, receipt);
            } catch (e) {
              if (m.dequeueCount >= q.maxDequeueCount) {
                await poison.createIfNotExists();
                await poison.sendMessage(m.messageText);
                await client.deleteMessage(m.messageId, receipt);
                log.error("queue.poisoned", { functionName: d.name, messageId: m.messageId, dequeueCount: m.dequeueCount, error: e });
              } else {
                // Visible again after the visibility timeout, like the host.
                await client.updateMessage(m.messageId, receipt, undefined, q.visibilityTimeoutSeconds);
                log.warn("queue.retry", { functionName: d.name, messageId: m.messageId, dequeueCount: m.dequeueCount, error: e });
              }
            }
          })().catch((e) => log.warn("queue.settle.failed", { functionName: d.name, error: e })).finally(() => { processing--; slotFreed?.(); })));
        } catch (e) {
          if (!stopping) log.warn("queue.poll.failed", { queue: queueName, error: e });
        }
        if (got > 0) { idle = 100; continue; }
        await new Promise((r) => setTimeout(r, idle));
        idle = Math.min(q.maxPollingIntervalMs, idle * 2);
      }
    })());
  }

  // ---- timers -------------------------------------------------------------------------
  const timers: NodeJS.Timeout[] = [];
  if (options.timers !== false) {
    for (const d of options.definitions) {
      if (d.trigger.kind !== "timer" || disabled.has(d.name)) continue;
      const schedule = parseSchedule(d.trigger.schedule);
      const handler = d.handler as (t: Timer, c: Ctx) => Promise<void>;
      let last = new Date();
      let running = false;
      const fire = () => {
        if (running || stopping) return; // the host does not overlap runs of one timer function
        running = true;
        const next = schedule.next(new Date());
        void track(handler({ isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: last.toISOString(), next: next.toISOString(), lastUpdated: new Date().toISOString() } }, context(d.name))
          .catch((e) => log.error("timer.failed", { functionName: d.name, error: e }))
          .finally(() => { running = false; last = new Date(); }));
      };
      let lastSecond = Math.floor(Date.now() / 1000);
      timers.push(setInterval(() => {
        const s = Math.floor(Date.now() / 1000);
        for (let t = lastSecond + 1; t <= s; t++) if (schedule.matches(new Date(t * 1000))) { fire(); break; }
        lastSecond = s;
      }, 250));
      if (d.trigger.runOnStartup) fire();
    }
  }

  const scheme = options.tls ? "https" : "http";
  log.info("devhost.started", { url: `${scheme}://127.0.0.1:${port}`, functions: options.definitions.map((d) => d.name), disabled: [...disabled] });
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    stop: async () => {
      stopping = true;
      for (const t of timers) clearInterval(t);
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      await Promise.allSettled(pollers);
      await Promise.allSettled([...inFlight]);
      server.closeAllConnections();
      await closed;
    },
  };
}
