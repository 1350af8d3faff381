/**
 * Voicemail end to end through the real trigger paths: Dovecot LDA delivery -> Lua push ->
 * storeNotifications -> queue -> syncWorker -> Graph; Outlook actions in the simulator ->
 * change notification -> graphNotifications -> queue -> syncWorker -> IMAP.
 * The fast read check and every safety-net timer are off (SAFETY_NET_TIMERS), so each check is
 * carried by its own path alone, and the runs' recorded reasons say which one did the work.
 * Breaks seen red: the simulator sends no change notifications (deliver() returns at once) or
 * the webhook enqueues nothing (handleGraphNotification's enqueue removed) -> "turns a read in
 * Outlook into \Seen ..." times out.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runReasons, SAFETY_NET_TIMERS, startWorld, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";

let w: World;
let userId = "";
const inbox = () => w.sim.outlook(userId).messages("inbox");
const seenOnStore = (user: string) => w.seenOnStore(user);

beforeAll(async () => {
  // WAV PCM keeps these recordings as they are, so the large one needs an upload session.
  w = await startWorld({ users: ["4711"], disabledFunctions: SAFETY_NET_TIMERS, profiles: [{ id: "wav", displayName: "WAV", voiceFormat: "wav" }] });
  ({ userId } = await w.link("4711", "alice@contoso.test", "wav"));
}, 60_000);
afterAll(async () => { await w?.stop(); });

describe("voicemail end to end", () => {
  it("subscribes to the voicemail folder on the first run", async () => {
    await expect.poll(async () => (await w.deps.state.listSubscriptions({})).length, { timeout: 15_000 }).toBe(1);
    expect(w.sim.subscriptions.size).toBe(1);
  });

  it("copies a deposited voice message to Exchange as a received voicemail with audio", async () => {
    await w.queueDrained(); // the link's first run is over: the copy below is the push's
    await w.dc.lda("4711", avayaVoiceMessage({ id: "e2e-1", seconds: 23 }));
    await expect.poll(() => inbox().length, { timeout: 10_000 }).toBe(1);
    const m = inbox()[0]!;
    expect(m).toMatchObject({ isDraft: false, isRead: false, subject: "Voice message from Ann Lee (+49 30 123456), 0:23" });
    const props = Object.fromEntries([...m.ext.values()].map((p) => [p.id, p.value]));
    expect(props).toMatchObject({ "String 0x001A": "IPM.Note.Microsoft.Voicemail.UM.CA", "Integer 0x6801": "23", "String 0x6803": "Ann Lee" });
    expect(m.attachments).toEqual([expect.objectContaining({ name: "msg0001.wav", contentType: "audio/wav" })]);
    await expect.poll(() => runReasons(w, "L-4711", "createInGraph", "store-change"), { timeout: 5000 }).toEqual(["store-change"]); // the store's push, nothing else
  });

  it("turns a read in Outlook into \\Seen on the voice store (the lamp goes off)", async () => {
    await w.queueDrained(); // the deposit's runs are over: what follows is the notification's
    w.sim.outlook(userId).markRead(inbox()[0]!.id);
    await expect.poll(() => seenOnStore("4711"), { timeout: 10_000 }).toEqual({ 1: true });
    await expect.poll(() => runReasons(w, "L-4711", "setImapSeen", "graph-change"), { timeout: 5000 }).toEqual(["graph-change"]); // the change notification alone
  });

  it("turns unread on the phone into unread in Outlook", async () => {
    const c = await w.imap("4711");
    await c.messageFlagsRemove("1", ["\\Seen"], { uid: true });
    await c.logout();
    await expect.poll(() => inbox()[0]?.isRead, { timeout: 10_000 }).toBe(false);
    await expect.poll(() => runReasons(w, "L-4711", "setGraphRead", "store-change"), { timeout: 5000 }).toEqual(["store-change"]);
  });

  it("ignores duplicated and reordered notifications (no duplicate copies)", async () => {
    w.sim.faults.duplicateNotifications = true;
    await w.dc.lda("4711", avayaVoiceMessage({ id: "e2e-2" }));
    await w.dc.lda("4711", avayaVoiceMessage({ id: "e2e-3" }));
    await expect.poll(() => inbox().length, { timeout: 10_000 }).toBe(3);
    // Read, unread, read again in Outlook; the notifications arrive duplicated and in reverse order.
    w.sim.faults.reorderNotificationsBatch = 6;
    const sent = w.sim.stats.notificationsSent;
    const target = inbox()[1]!.id;
    w.sim.outlook(userId).markRead(target);
    w.sim.outlook(userId).markRead(target, false);
    w.sim.outlook(userId).markRead(target);
    w.sim.faults.reorderNotificationsBatch = 0;
    w.sim.flushHeldNotifications();
    // First the fault happened: all six (three changes, each twice) reached the webhook ...
    await expect.poll(() => w.sim.stats.notificationsSent - sent, { timeout: 10_000 }).toBeGreaterThanOrEqual(6);
    w.sim.faults.duplicateNotifications = false;
    // ... then the store ends with the last state (read), on that message only, and no copy doubled.
    await expect.poll(async () => Object.values(await seenOnStore("4711")).filter(Boolean).length, { timeout: 10_000 }).toBe(1);
    expect(inbox().length).toBe(3);
    expect(inbox().filter((m) => m.isRead).map((m) => m.id)).toEqual([target]);
  });

  it("uploads large recordings through an upload session, and finishes an interrupted upload", async () => {
    const before = inbox().length;
    await w.dc.lda("4711", avayaVoiceMessage({ id: "big-1", audioSamples: 2_600_000, seconds: 325 })); // ~5.2 MB WAV
    await expect.poll(() => inbox().find((m) => m.attachments.length && m.attachments[0]!.size > 5_000_000), { timeout: 15_000 }).toBeTruthy();
    // The upload fails after the item was created: the next run finishes it, without a second copy.
    w.sim.faults.failUploadsNext = 1;
    await w.dc.lda("4711", avayaVoiceMessage({ id: "big-2", audioSamples: 2_600_000 }));
    await expect.poll(() => inbox().filter((m) => m.attachments.length && m.attachments[0]!.size > 5_000_000).length, { timeout: 20_000 }).toBe(2);
    expect(inbox().length).toBe(before + 2);
    expect(w.sim.faults.failUploadsNext).toBe(0);
    // Leave the mailbox as the next test expects it.
    const c = await w.imap("4711");
    const big = (await c.search({ larger: 1_000_000 }, { uid: true })) as number[];
    await c.messageDelete(big.join(","), { uid: true });
    await c.logout();
    await expect.poll(() => inbox().length, { timeout: 10_000 }).toBe(before);
  }, 60_000);

  it("deletes both ways: Outlook delete expunges, voice-store delete moves to Deleted Items", async () => {
    const deletedBefore = w.sim.outlook(userId).messages("deleteditems").length;
    const victim = inbox().find((m) => m.isRead)!;
    w.sim.outlook(userId).delete(victim.id);
    await expect.poll(async () => Object.keys(await seenOnStore("4711")).length, { timeout: 10_000 }).toBe(2);
    const c = await w.imap("4711");
    await c.messageDelete("1", { uid: true });
    await c.logout();
    await expect.poll(() => inbox().length, { timeout: 10_000 }).toBe(1);
    expect(w.sim.outlook(userId).messages("deleteditems").length).toBe(deletedBefore + 2);
  });
});
