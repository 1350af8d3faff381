/**
 * A voice store with all its connections for a user taken (Dovecot's
 * mail_max_userip_connections): the run is put off with a growing delay instead of burning the
 * host's five retries in seconds, and the voice messages arrive once connections free up.
 * Timers are off, so no poll can rescue a run that was given up.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";

let w: World;
let userId = "";
beforeAll(async () => {
  w = await startWorld({ users: ["8101"], timers: false, maxUserIpConnections: 3 });
  ({ userId } = await w.link("8101", "busy@contoso.test"));
  await w.queueDrained(); // the first run is over before the connections are taken
}, 60_000);
afterAll(async () => { await w?.stop(); });

describe("voice store connection limit", () => {
  it("puts the run off with backoff and copies the messages once connections free up", async () => {
    const held = [await w.imap("8101"), await w.imap("8101"), await w.imap("8101")];
    await w.dc.lda("8101", avayaVoiceMessage({ id: "busy-1" }));
    await w.dc.lda("8101", avayaVoiceMessage({ id: "busy-2" }));
    const lines = () => ((w.log as { lines?: Array<Record<string, unknown>> }).lines ?? []);
    await expect.poll(() => lines().filter((l) => l.event === "sync.outage").length, { timeout: 15_000 }).toBeGreaterThanOrEqual(3);
    expect(lines().find((l) => l.event === "sync.outage")).toMatchObject({ code: "IMAP_CONNECTION_LIMIT", attempt: 1, retryInSeconds: 2 });
    expect(w.sim.outlook(userId).messages("inbox")).toHaveLength(0);
    // Longer than the host's own retries last here (5 deliveries, 1 s apart).
    await new Promise((r) => setTimeout(r, 8000));
    await Promise.all(held.map((c) => c.logout()));
    await expect.poll(() => w.sim.outlook(userId).messages("inbox").length, { timeout: 30_000 }).toBe(2);
    expect(lines().some((l) => l.event === "queue.poisoned")).toBe(false);
  }, 60_000);
});
