/**
 * The Graph webhooks answer within Graph's 3 s window whatever the state store does
 * (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks): 202 once
 * the notification is durable (queued), 503 with Retry-After when it cannot be made durable in
 * time. Storage (tables and queue) goes through a TCP proxy that is healthy, slow or down; the
 * notifications go through the dev host's real HTTP function.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, ENDPOINT, type World } from "./world.js";
import { signFor } from "../../src/security/endpointSecrets.js";
import { startStorageProxy, type StorageProxy } from "../harness/storageProxy.js";
import { buildDeps, setDeps } from "../../src/app/deps.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { keepSubscriptions } from "../../src/app/subscriptions.js";

let w: World;
let proxy: StorageProxy;
/** The voice store's push (Dovecot's Lua hook posts the same), signed with the endpoint's secret. */
async function storePush(i: number, again?: SignedPush): Promise<{ status: number; ms: number; retryAfter: string | null; sent: SignedPush }> {
  const body = again?.body ?? JSON.stringify({ events: [{ event: "MessageNew", user: "5201", mailbox: "INBOX", uid: 100 + i, uidvalidity: 1 }] });
  const ts = again?.ts ?? Math.floor(Date.now() / 1000);
  const sent = { body, ts, signature: again?.signature ?? signFor(w.env.UMC_STORE_NOTIFY_SECRET!, ENDPOINT, "push", ts, body) };
  const t0 = Date.now();
  const res = await fetch(`${w.host.url}/api/store/notifications/${ENDPOINT}`, { method: "POST", headers: { "content-type": "application/json", "x-umc-timestamp": String(ts), "x-umc-signature": sent.signature }, body });
  await res.arrayBuffer();
  return { status: res.status, ms: Date.now() - t0, retryAfter: res.headers.get("retry-after"), sent };
}
interface SignedPush { body: string; ts: number; signature: string }
let notify: (path: "notifications" | "lifecycle", i: number) => Promise<{ status: number; ms: number; retryAfter: string | null }>;

beforeAll(async () => {
  w = await startWorld({ users: ["5201"], quiet: true, timers: false, queueWorkers: false });
  proxy = await startStorageProxy(w.az.connectionString);
  const { linkId, userId } = await w.link("5201", "deadline@contoso.test");
  await keepSubscriptions(w.deps, (await w.deps.state.getLink(linkId))!, { linkId, kind: "subscriptions", reason: "admin" });
  const sub = [...w.sim.subscriptions.values()].find((s) => s.userId === userId)!;
  // The HTTP functions now reach storage only through the proxy.
  setDeps(buildDeps(loadConfig({ ...w.env, UMC_STORAGE_CONNECTION_STRING: proxy.connectionString }), createLogger({ level: "error" })));
  notify = async (path, i) => {
    const item = path === "notifications"
      ? { subscriptionId: sub.id, changeType: "updated", resource: `Users/${userId}/Messages/m${i}`, resourceData: { id: `m${i}` }, clientState: sub.clientState, tenantId: sub.tenantId }
      : { subscriptionId: sub.id, lifecycleEvent: "reauthorizationRequired", clientState: sub.clientState, tenantId: sub.tenantId };
    const t0 = Date.now();
    const res = await fetch(`${w.host.url}/api/graph/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ value: [item] }) });
    await res.arrayBuffer();
    return { status: res.status, ms: Date.now() - t0, retryAfter: res.headers.get("retry-after") };
  };
}, 60_000);
afterAll(async () => { setDeps(w?.deps); await proxy?.stop(); await w?.stop(); });

describe("webhook answers within 3 s", () => {
  it("storage down: 503 with Retry-After, well within 3 s, on both webhooks and the store's push", async () => {
    proxy.setMode({ kind: "down" });
    for (const path of ["notifications", "lifecycle"] as const) {
      const r = await notify(path, 1);
      expect(r.status).toBe(503);
      expect(Number(r.retryAfter)).toBeGreaterThan(0);
      expect(r.ms).toBeLessThan(3000);
    }
    // The store's hook waits inside its own delivery: it is not held for the storage's retries.
    const r = await storePush(1);
    expect(r).toMatchObject({ status: 503 });
    expect(Number(r.retryAfter)).toBeGreaterThan(0);
    expect(r.ms).toBeLessThan(3000);
  });

  it("storage slow (500 ms per call): 202 (durable) within 3 s, once the calls hung in the outage have timed out", async () => {
    proxy.setMode({ kind: "slow", delayMs: 500 });
    const before = (await w.deps.syncQueue.getProperties()).approximateMessagesCount ?? 0;
    // Connections opened during the outage hang until their deadline: every answer meanwhile is still within 3 s.
    const answers: Array<{ status: number; ms: number }> = [];
    await expect.poll(async () => { await w.deps.state.clearQueued("L-5201"); const r = await notify("notifications", answers.length); answers.push(r); return r.status; }, { timeout: 30_000, interval: 200 }).toBe(202);
    for (const a of answers) expect(a.ms).toBeLessThan(3000);
    expect(answers.at(-1)!.ms).toBeGreaterThanOrEqual(1000); // it did wait on the slow store (lookup, mark, enqueue)
    expect((await w.deps.syncQueue.getProperties()).approximateMessagesCount ?? 0).toBeGreaterThan(before);
  });

  it("storage healthy again: 202 at once", async () => {
    proxy.setMode({ kind: "healthy" });
    const r = await notify("lifecycle", 3);
    expect(r.status).toBe(202);
    expect(r.ms).toBeLessThan(1000);
    await w.deps.state.clearQueued("L-5201");
    const before = (await w.deps.syncQueue.getProperties()).approximateMessagesCount ?? 0;
    const p = await storePush(3);
    expect(p.status).toBe(202);
    expect(p.ms).toBeLessThan(1000);
    expect((await w.deps.syncQueue.getProperties()).approximateMessagesCount ?? 0).toBeGreaterThan(before);
  });

  it("the push answered 503 in the outage, sent again as it was, is taken (not refused as a replay); taken once, it is a replay", async () => {
    // Break seen red: the replay memory recording a signature when it is verified (before the
    // answer) -> 401 "replayed notification", the deposit's push lost. Under load (docs/load.md)
    // the hook's retry after its 2 s timeout met exactly this.
    // The endpoints are loaded (a push was just taken), so this one is verified before the
    // storage outage fails it.
    proxy.setMode({ kind: "down" });
    const refused = await storePush(4);
    expect(refused.status).toBe(503);
    proxy.setMode({ kind: "healthy" });
    await w.deps.state.clearQueued("L-5201");
    const before = (await w.deps.syncQueue.getProperties()).approximateMessagesCount ?? 0;
    // Sent again until storage answers (calls hung in the outage time out first).
    let again = 0;
    await expect.poll(async () => (again = (await storePush(0, refused.sent)).status), { timeout: 15_000, interval: 200 }).not.toBe(503);
    expect(again).toBe(202);
    expect((await w.deps.syncQueue.getProperties()).approximateMessagesCount ?? 0).toBeGreaterThan(before);
    expect((await storePush(0, refused.sent)).status).toBe(401);
  });
});
