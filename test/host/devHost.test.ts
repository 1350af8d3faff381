import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueueClient } from "@azure/storage-queue";
import type { HttpRequest, InvocationContext } from "@azure/functions";
import { startAzurite, type AzuriteHandle } from "../harness/azurite.js";
import { startDevHost, type DevHost } from "../../src/host/devHost.js";
import { parseSchedule } from "../../src/host/ncrontab.js";
import { registerAll, type FunctionDefinition, type Registrar } from "../../functions/definition.js";
import { functionDefinitions } from "../../functions/registry.js";
import { buildDeps, setDeps } from "../../src/app/deps.js";
import { loadConfig } from "../../src/config.js";
import { memoryLogger } from "../../src/log.js";

let az: AzuriteHandle;
let host: DevHost;
const log = memoryLogger();
const received: unknown[] = [];
const attempts: number[] = [];
const slow: unknown[] = [];
let ticks = 0;

const testFunctions: FunctionDefinition[] = [
  { name: "echo", trigger: { kind: "http", route: "echo/{id}", methods: ["POST"], authLevel: "anonymous", maxBodyBytes: 20 * 1024 * 1024 },
    handler: async (req: HttpRequest) => ({ status: 201, jsonBody: { id: req.params.id, q: req.query.get("q"), body: await req.text() } }) },
  { name: "boom", trigger: { kind: "http", route: "boom", methods: ["GET"], authLevel: "anonymous", maxBodyBytes: 0 },
    handler: async () => { throw new Error("secret detail"); } },
  { name: "work", trigger: { kind: "queue", queueName: "work", connection: "UMC_STORAGE_CONNECTION_STRING" },
    handler: async (m: unknown) => { received.push(m); } },
  { name: "fails", trigger: { kind: "queue", queueName: "fails", connection: "UMC_STORAGE_CONNECTION_STRING" },
    handler: async (_m: unknown, ctx: InvocationContext) => { attempts.push(ctx.triggerMetadata?.dequeueCount as number); throw new Error("always"); } },
  { name: "slow", trigger: { kind: "queue", queueName: "slow", connection: "UMC_STORAGE_CONNECTION_STRING" },
    handler: async (m: unknown) => { slow.push(m); await new Promise((r) => setTimeout(r, 5000)); } },
  { name: "tick", trigger: { kind: "timer", schedule: "* * * * * *" }, handler: async () => { ticks++; } },
];

beforeAll(async () => {
  az = await startAzurite();
  setDeps(buildDeps(loadConfig({ UMC_ENVIRONMENT: "test", UMC_STORAGE_CONNECTION_STRING: az.connectionString }), log));
  host = await startDevHost({ definitions: [...functionDefinitions, ...testFunctions], storageConnectionString: az.connectionString, logger: log,
    queues: { maxPollingIntervalMs: 200, maxDequeueCount: 3, visibilityTimeoutSeconds: 0 }, messageHoldSeconds: 2 });
});
afterAll(async () => { await host?.stop(); setDeps(undefined); await az?.stop(); });

describe("dev host", () => {
  it("serves the registry's health function with real checks", async () => {
    await new QueueClient(az.connectionString, "sync-mailbox").createIfNotExists();
    const res = await fetch(`${host.url}/api/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ok", checks: { stateStore: "ok", syncQueue: "ok" } });
  });

  it("routes params, query and body; 404, 405 and 413; hides handler errors", async () => {
    const res = await fetch(`${host.url}/api/echo/a%20b?q=1`, { method: "POST", body: "hello" });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ id: "a b", q: "1", body: "hello" });
    expect((await fetch(`${host.url}/api/nope`)).status).toBe(404);
    expect((await fetch(`${host.url}/api/echo/x`)).status).toBe(405);
    // A dropped connection rejects the fetch and fails the test: the host must answer 413.
    // Break used: the host destroys the request instead of answering -> "TypeError: fetch failed".
    const big = await fetch(`${host.url}/api/echo/x`, { method: "POST", body: Buffer.alloc(11 * 1024 * 1024) });
    expect(big.status).toBe(413);
    expect(await big.json()).toEqual({ error: "PAYLOAD_TOO_LARGE" });
    // Declared too large up front: refused from the header, the body still read and discarded.
    const declared = await fetch(`${host.url}/api/echo/x`, { method: "POST", body: Buffer.alloc(10 * 1024 * 1024 + 1) });
    expect(declared.status).toBe(413);
    // The connection is still usable: the next request on it is served.
    expect((await fetch(`${host.url}/api/echo/y`, { method: "POST", body: "ok" })).status).toBe(201);
    const boom = await fetch(`${host.url}/api/boom`);
    expect(boom.status).toBe(500);
    expect(await boom.text()).not.toContain("secret detail");
  });

  it("keeps a message invisible while its function runs longer than the hold (delivered once)", async () => {
    // The hold is 2 s here, the function takes 5 s: without the renewal the message came back
    // after 2 s and ran a second time beside the first.
    const q = new QueueClient(az.connectionString, "slow");
    await q.createIfNotExists();
    await q.sendMessage(Buffer.from(JSON.stringify({ n: 1 })).toString("base64"));
    await expect.poll(() => slow.length, { timeout: 10_000 }).toBe(1);
    await expect.poll(async () => (await q.getProperties()).approximateMessagesCount, { timeout: 15_000, interval: 200 }).toBe(0);
    expect(slow).toEqual([{ n: 1 }]);
  });

  it("delivers base64 queue messages and parks poison ones after maxDequeueCount", async () => {
    const work = new QueueClient(az.connectionString, "work");
    await work.sendMessage(Buffer.from(JSON.stringify({ linkId: "L1" })).toString("base64"));
    await expect.poll(() => received, { timeout: 10_000 }).toEqual([{ linkId: "L1" }]);
    const fails = new QueueClient(az.connectionString, "fails");
    await fails.sendMessage(Buffer.from("bad").toString("base64"));
    const poison = new QueueClient(az.connectionString, "fails-poison");
    await expect.poll(async () => (await poison.createIfNotExists(), (await poison.peekMessages()).peekedMessageItems.length), { timeout: 15_000 }).toBe(1);
    expect(attempts).toEqual([1, 2, 3]);
    expect(Buffer.from((await poison.peekMessages()).peekedMessageItems[0]!.messageText, "base64").toString()).toBe("bad");
  });

  it("fires timers on their NCRONTAB schedule", async () => {
    await expect.poll(() => ticks, { timeout: 5000 }).toBeGreaterThanOrEqual(2);
  });

  it("registers every definition with the Functions runtime the same way", () => {
    const seen: string[] = [];
    const registrar: Registrar = {
      http: (name, o) => seen.push(`http ${name} ${o.route} ${o.methods.join(",")}`),
      storageQueue: (name, o) => seen.push(`queue ${name} ${o.queueName}`),
      timer: (name, o) => seen.push(`timer ${name} ${o.schedule}`),
    };
    registerAll(registrar, testFunctions);
    expect(seen).toEqual(["http echo echo/{id} POST", "http boom boom GET", "queue work work", "queue fails fails", "queue slow slow", "timer tick * * * * * *"]);
  });
});

describe("NCRONTAB", () => {
  it("parses the six-field forms the timer trigger accepts", () => {
    const at = (iso: string) => new Date(iso);
    expect(parseSchedule("0 */5 * * * *").next(at("2026-11-24T10:02:30Z")).toISOString()).toBe("2026-11-24T10:05:00.000Z");
    expect(parseSchedule("*/10 * * * * *").next(at("2026-11-24T10:00:05Z")).toISOString()).toBe("2026-11-24T10:00:10.000Z");
    expect(parseSchedule("0 30 9 * * 1-5").next(at("2026-11-28T00:00:00Z")).toISOString()).toBe("2026-11-30T09:30:00.000Z");
    expect(parseSchedule("0 0 0,12 1 * *").next(at("2026-11-24T00:00:00Z")).toISOString()).toBe("2026-12-01T00:00:00.000Z");
    expect(() => parseSchedule("* * * * *")).toThrow(/6 fields/);
    expect(() => parseSchedule("61 * * * * *")).toThrow(/outside/);
  });
});
