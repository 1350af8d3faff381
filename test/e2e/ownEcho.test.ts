/**
 * Own-echo suppression (issue #19, point 2), through the real paths with every safety-net timer
 * off: a read in Outlook reaches the store as a STORE \Seen; Dovecot's Lua push reports that
 * STORE back to the dev host, which recognises the connector's own write (announced by the run
 * before it wrote: src/state/leases.ts expectStoreEchoes) and starts no run. A change the phone
 * makes is still a change: its push starts a run.
 * The same the other way: a change the phone makes reaches Exchange as a PATCH (or a move to
 * Deleted Items), Graph notifies it back, and the webhook recognises the connector's own write
 * (announced with the store's, src/state/leases.ts expectEchoes) and starts no run.
 * Breaks seen red: ownEcho() in src/app/webhooks.ts returning false -> "one run per Outlook-side
 * change" (2 runs: the echo's empty one); ownGraphEcho() returning false -> "one run per
 * store-side change" and "a change the phone makes ..." (2 runs); the voicemail subscription
 * asking for "created" too (src/app/subscriptions.ts) -> "one run per deposit" (2 runs: Graph
 * reports every copy the connector creates).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runsOf, SAFETY_NET_TIMERS, settle, startWorld, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { keyOf } from "../../src/state/tables.js";

let w: World;
let userId = "";
const LINK = "L-4711";
const inbox = () => w.sim.outlook(userId).messages("inbox");
const runs = () => runsOf("voicemail", LINK);
const seenOnStore = () => w.seenOnStore("4711");

beforeAll(async () => {
  w = await startWorld({ users: ["4711"], disabledFunctions: SAFETY_NET_TIMERS });
  ({ userId } = await w.link("4711", "alice@contoso.test"));
  for (let i = 0; i < 2; i++) await w.dc.lda("4711", avayaVoiceMessage({ id: `echo-${i}`, seconds: 3 }));
  for (const until = Date.now() + 30_000; inbox().length < 2;) {
    if (Date.now() > until) throw new Error("the voice messages did not reach Outlook");
    await new Promise((r) => setTimeout(r, 200));
  }
  await settle(w);
}, 60_000);
afterAll(async () => { await w?.stop(); });

describe("own-echo suppression", () => {
  it("one run per Outlook-side change: the store's push of the connector's own STORE starts none", async () => {
    for (const [i, read, seen] of [[0, true, 1], [0, false, 0], [1, true, 1]] as const) {
      const before = runs();
      w.sim.outlook(userId).markRead(inbox()[i]!.id, read);
      await expect.poll(async () => Object.values(await seenOnStore()).filter(Boolean).length, { timeout: 10_000 }).toBe(seen);
      await settle(w);
      expect(runs() - before).toBe(1);
    }
  });

  it("a change the phone makes on a message the connector just wrote is still a change", async () => {
    // The connector set \Seen on one message just now; the phone clears it again (a FlagsClear,
    // not the echo of the connector's FlagsSet): the push starts a run that carries it to Outlook.
    const seen = Object.entries(await seenOnStore()).filter(([, s]) => s).map(([uid]) => uid);
    expect(seen).toHaveLength(1);
    const before = runs();
    const c = await w.imap("4711");
    try {
      await c.mailboxOpen("INBOX");
      await c.messageFlagsRemove(seen[0]!, ["\\Seen"], { uid: true });
    } finally { await c.logout(); }
    await expect.poll(() => inbox().filter((m) => m.isRead).length, { timeout: 10_000 }).toBe(0);
    await settle(w);
    // The store's change runs once; Graph's notification of the connector's own PATCH starts none.
    expect(runs() - before).toBe(1);
  });

  it("one run per store-side change: Graph's notification of the connector's own PATCH or delete starts none", async () => {
    const c = await w.imap("4711");
    try {
      await c.mailboxOpen("INBOX");
      const uids = Object.keys(await seenOnStore());
      // Heard on the phone: \Seen -> isRead in Outlook.
      let before = runs();
      await c.messageFlagsAdd(uids[0]!, ["\\Seen"], { uid: true });
      await expect.poll(() => inbox().filter((m) => m.isRead).length, { timeout: 10_000 }).toBe(1);
      await settle(w);
      expect(runs() - before).toBe(1);
      // Deleted on the phone: the Exchange copy goes to Deleted Items ("deleted" for the folder).
      // The phone's delete is two store changes (STORE \Deleted, then EXPUNGE), each pushed, so
      // up to two runs; Graph's "deleted" for the connector's move is taken as its echo (checked
      // below: nothing announced is left), even when it arrives after the second push's run
      // announced its own writes (CI once counted 3 runs here while expectEchoes replaced the
      // last run's announcement; test/state/stateStore.test.ts shows the merge).
      before = runs();
      await c.messageDelete(uids[1]!, { uid: true });
      await expect.poll(() => inbox().length, { timeout: 10_000 }).toBe(1);
      await settle(w);
      expect(runs() - before).toBeLessThanOrEqual(2);
      const echo = await (await w.deps.state.tableClients.client("runs")).getEntity<{ graph?: string }>("echo", keyOf(LINK));
      expect(JSON.parse(echo.graph ?? "null")).toEqual([]);
    } finally { await c.logout(); }
    // A change the user then makes in Outlook to the message the connector wrote is a change again.
    const before = runs();
    w.sim.outlook(userId).markRead(inbox()[0]!.id, false);
    await expect.poll(async () => Object.values(await seenOnStore()).filter(Boolean).length, { timeout: 10_000 }).toBe(0);
    await settle(w);
    expect(runs() - before).toBe(1);
  });

  it("one run per deposit: Graph's notification of the connector's own create starts none", async () => {
    for (let i = 0; i < 3; i++) {
      const before = runs();
      const count = inbox().length;
      await w.dc.lda("4711", avayaVoiceMessage({ id: `deposit-${i}`, seconds: 3 }));
      await expect.poll(() => inbox().length, { timeout: 10_000 }).toBe(count + 1);
      await settle(w);
      expect(runs() - before).toBe(1);
    }
  });
});
