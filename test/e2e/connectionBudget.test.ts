/**
 * A store that allows one connection per user and client address (Dovecot's
 * mail_max_userip_connections = 1) and an endpoint budget of 1 per user / 2 per address: three
 * instances (this process and two child processes) run voicemail, contacts and calendar for
 * two mailboxes at once, yet Dovecot never refuses a login for too many connections and never
 * holds more than the budget (sampled with `doveadm who`), and every run gets done.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, ENDPOINT, type World } from "./world.js";
import { startInstance, type Instance } from "../harness/instance.js";
import { enqueueSync } from "../../src/app/syncQueue.js";
import { statusReport } from "../../src/admin/status.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";

const USERS = ["7301", "7302"];
let w: World;
let instances: Instance[] = [];
const userIds: Record<string, string> = {};

/** Connections Dovecot holds now, per user (`doveadm who`: username, #, proto, pids, ips). */
async function held(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await w.dc.doveadm("who")).split("\n").slice(1)) {
    const [user, n] = line.trim().split(/\s+/);
    if (user && n && /^\d+$/.test(n)) out.set(user, (out.get(user) ?? 0) + Number(n));
  }
  return out;
}

beforeAll(async () => {
  w = await startWorld({
    users: USERS, timers: false, quiet: true, maxUserIpConnections: 1,
    profiles: [{ id: "all", displayName: "voice, contacts, calendar", contacts: { enabled: true }, calendar: { enabled: true } }],
    endpoint: { vendor: "dovecot", connectionBudget: { perUser: 1, perAddress: 2 } },
  });
  // Starting a tsx process takes long on a loaded machine: both at once, with time to spare.
  instances = await Promise.all([startInstance(w.env, {}, 150_000), startInstance(w.env, {}, 150_000)]);
  for (const u of USERS) userIds[u] = (await w.link(u, `budget${u}@contoso.test`, "all")).userId;
}, 240_000);
afterAll(async () => { await Promise.all(instances.map((i) => i.stop())); await w?.stop(); });

describe("connection budget across instances", () => {
  it("never exceeds the store's per-user limit, and every run gets done", async () => {
    for (const u of USERS) for (let i = 0; i < 3; i++) await w.dc.lda(u, avayaVoiceMessage({ id: `budget-${u}-${i}` }));
    let maxPerUser = 0;
    let maxTotal = 0;
    const sampler = setInterval(() => {
      held().then((h) => {
        maxPerUser = Math.max(maxPerUser, ...h.values(), 0);
        maxTotal = Math.max(maxTotal, [...h.values()].reduce((a, b) => a + b, 0));
      }, () => { /* doveadm raced a restart of anvil's view; the next sample counts */ });
    }, 100);
    const started = Date.now();
    for (let round = 0; round < 6; round++) {
      for (const u of USERS) for (const kind of ["voicemail", "contacts", "calendar"] as const) {
        await enqueueSync(w.deps.syncQueue, { linkId: `L-${u}`, ...(kind === "voicemail" ? {} : { kind }), reason: "poll", at: Date.now() });
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    for (const u of USERS) await expect.poll(() => w.sim.outlook(userIds[u]!).messages("inbox").length, { timeout: 60_000 }).toBe(3);
    await expect.poll(async () => (await w.deps.state.listLinks({})).every((l) => l.lastSyncAt && l.kinds?.contacts?.lastSyncAt && l.kinds?.calendar?.lastSyncAt), { timeout: 60_000 }).toBe(true);
    clearInterval(sampler);
    const refused = w.dc.log().split("\n").filter((l) => /Maximum number of connections/.test(l));
    expect(refused, `Dovecot refused logins after ${(Date.now() - started) / 1000} s`).toEqual([]);
    expect(maxPerUser).toBeLessThanOrEqual(1);
    expect(maxPerUser).toBe(1); // the sampler did see connections
    expect(maxTotal).toBeLessThanOrEqual(2);
    const store = (await statusReport(w.deps)).stores?.find((s) => s.endpointId === ENDPOINT);
    expect(store?.budget).toEqual({ perUser: 1, perAddress: 2 });
  }, 180_000);
});
