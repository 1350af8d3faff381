/**
 * Voicemail sync under the events that break naive connectors: lifecycle notifications,
 * lost notifications, delta token expiry, a UIDVALIDITY reset, an emptied store, secure
 * messages, forged webhooks, and bursts for one mailbox.
 * The fast read check and every safety-net timer are off (SAFETY_NET_TIMERS): a lifecycle event
 * or a notification is the only thing that can carry the change under test.
 * Breaks seen red: the webhook enqueues nothing for change notifications (handleGraphNotification's
 * requestChangeRun replaced by a no-op) -> "recreates a removed subscription and catches up;
 * resyncs on 'missed'" fails at "the new subscription delivers again"; the webhook acting on an
 * unverified clientState (parseNotifications taking the link id before the dot) -> "drops
 * forged notifications ..." fails; one lease per run instead of per mailbox (acquireLease key
 * with the owner appended, so runs never meet) -> "coalesces a burst ..." fails.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runReasons, SAFETY_NET_TIMERS, startWorld, type World } from "./world.js";
import { memoryLogger } from "../../src/log.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { enqueueSync } from "../../src/app/syncQueue.js";
import { openVoicemailPorts } from "../../src/app/voicemail.js";
import { enqueueSubscriptionUpkeep } from "../../src/app/subscriptions.js";
import { enqueueLinks } from "../../src/app/schedule.js";
import { syncVoicemail } from "../../src/sync/voicemailSync.js";

let w: World;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
beforeAll(async () => { w = await startWorld({ users: ["6001", "6002", "6003", "6004", "6005", "6006"], logger: memoryLogger("debug"), disabledFunctions: SAFETY_NET_TIMERS }); }, 60_000);
const drained = () => w.queueDrained();
const lines = () => (w.log as unknown as { lines: Array<Record<string, unknown>> }).lines;
const storeSeen = async (mailbox: string, uid = 1) => {
  const c = await w.imap(mailbox);
  try { const m = await c.fetchOne(String(uid), { flags: true }, { uid: true }); return m !== false && !!m.flags?.has("\\Seen"); } finally { await c.logout(); }
};
afterAll(async () => { await w?.stop(); });

const inbox = (userId: string) => w.sim.outlook(userId).messages("inbox");

/** Pauses the link (queue runs skip it), waits for a run in flight to end, then runs the executor directly. */
async function pauseAndRun(linkId: string, between: () => Promise<void> | void) {
  await w.deps.state.modifyLink(linkId, (l) => ({ ...l, state: "paused" }));
  await w.queueDrained();
  await between();
  const link = (await w.deps.state.getLink(linkId))!;
  const ports = await openVoicemailPorts(w.deps, link);
  try {
    return await syncVoicemail({ ...ports, log: w.deps.log, limits: { massDeleteMaxShare: 0.5 }, ids: { tenantId: link.tenantId, mailboxId: linkId } });
  } finally {
    await ports.voice.close();
  }
}

describe("lifecycle and lost notifications", () => {
  it("recreates a removed subscription and catches up; resyncs on 'missed'", async () => {
    const { linkId, userId } = await w.link("6001", "l1@contoso.test");
    await expect.poll(async () => (await w.deps.state.listSubscriptions({ linkId })).length, { timeout: 10_000 }).toBe(1);
    const [sub] = await w.deps.state.listSubscriptions({ linkId });
    const faults = w.sim.mailboxFaults.arm(userId);
    faults.dropNotificationsNext = 1_000; // Graph loses everything for this mailbox for a while
    await w.dc.lda("6001", avayaVoiceMessage({ id: "lc-1" }));
    await expect.poll(() => inbox(userId).length, { timeout: 10_000 }).toBe(1); // store push still works
    const dropped = w.sim.mailboxFaults.delivered(userId).notificationsDropped;
    w.sim.outlook(userId).markRead(inbox(userId)[0]!.id); // this notification is dropped
    expect(w.sim.mailboxFaults.delivered(userId).notificationsDropped).toBe(dropped + 1);
    faults.dropNotificationsNext = 0;
    expect(await storeSeen("6001")).toBe(false); // nothing else carries it: no timer runs in this world
    w.sim.fireLifecycle(sub!.subscriptionId, "missed");
    await expect.poll(() => storeSeen("6001"), { timeout: 10_000 }).toBe(true);
    await expect.poll(() => runReasons(w, linkId, "setImapSeen", "graph-missed"), { timeout: 5000 }).toEqual(["graph-missed"]);
    w.sim.fireLifecycle(sub!.subscriptionId, "subscriptionRemoved");
    await expect.poll(async () => (await w.deps.state.listSubscriptions({ linkId })).filter((s) => s.subscriptionId !== sub!.subscriptionId && w.sim.subscriptions.has(s.subscriptionId)).length, { timeout: 10_000 }).toBe(1);
    // The new subscription delivers again: unread on the phone reaches Outlook by the push, then
    // a read in Outlook reaches the store by a change notification of the new subscription.
    const c = await w.imap("6001");
    await c.messageFlagsRemove("1", ["\\Seen"], { uid: true });
    await c.logout();
    await expect.poll(() => inbox(userId)[0]?.isRead, { timeout: 10_000 }).toBe(false);
    await drained(); // the runs the phone's change caused are over: what follows is the notification's
    const sentBefore = w.sim.stats.notificationsSent;
    w.sim.outlook(userId).markRead(inbox(userId)[0]!.id);
    await expect.poll(() => storeSeen("6001"), { timeout: 10_000 }).toBe(true);
    expect(w.sim.stats.notificationsSent).toBeGreaterThan(sentBefore);
    await expect.poll(() => runReasons(w, linkId, "setImapSeen", "graph-change").at(-1), { timeout: 5000 }).toBe("graph-change");
  });

  it("renews subscriptions before they expire (a new one, then the old one goes), and recreates those Graph lost", async () => {
    const { linkId } = await w.link("6002", "l2@contoso.test");
    await expect.poll(async () => (await w.deps.state.listSubscriptions({ linkId })).length, { timeout: 10_000 }).toBe(1);
    const [sub] = await w.deps.state.listSubscriptions({ linkId });
    // Due: less than half its life left.
    await w.deps.state.putSubscription({ ...sub!, createdAt: new Date(Date.now() - 6 * 24 * 3600_000).toISOString(), expiresAt: new Date(Date.now() + 3600_000).toISOString() });
    expect((await enqueueSubscriptionUpkeep(w.deps)).enqueued).toBeGreaterThanOrEqual(1);
    await expect.poll(async () => (await w.deps.state.listSubscriptions({ linkId })).map((s) => s.subscriptionId), { timeout: 10_000 }).not.toContain(sub!.subscriptionId);
    expect(w.sim.subscriptions.has(sub!.subscriptionId)).toBe(false);
    const [renewed] = await w.deps.state.listSubscriptions({ linkId });
    expect(w.sim.subscriptions.get(renewed!.subscriptionId)?.clientState).not.toBe(w.sim.subscriptions.get(sub!.subscriptionId)?.clientState);
    w.sim.subscriptions.delete(renewed!.subscriptionId); // expired or removed on Graph's side without a lifecycle event
    await enqueueLinks(w.deps, "reconcile"); // the hourly reconcile checks subscriptions too
    await expect.poll(async () => (await w.deps.state.listSubscriptions({ linkId })).filter((s) => w.sim.subscriptions.has(s.subscriptionId)).length, { timeout: 10_000 }).toBe(1);
  });

  it("re-matches after the delta token expires, without re-copying", async () => {
    const linkId = "L-6002";
    const userId = (await w.deps.state.getLink(linkId))!.userId;
    await w.dc.lda("6002", avayaVoiceMessage({ id: "dx-1" }));
    await expect.poll(() => inbox(userId).length, { timeout: 10_000 }).toBe(1);
    const r = await pauseAndRun(linkId, () => w.sim.expireDeltaTokens(userId));
    expect(r.deltaExpired).toBe(true);
    expect(r.actions.createInGraph).toBe(0);
    expect(inbox(userId)).toHaveLength(1);
  });
});

describe("voice store upsets", () => {
  it("re-matches by sync key after a UIDVALIDITY reset, without duplicates", async () => {
    const { linkId, userId } = await w.link("6003", "l3@contoso.test");
    await w.dc.lda("6003", avayaVoiceMessage({ id: "uv-1" }));
    await w.dc.lda("6003", avayaVoiceMessage({ id: "uv-2" }));
    await expect.poll(() => inbox(userId).length, { timeout: 10_000 }).toBe(2);
    const r = await pauseAndRun(linkId, async () => {
      // The store is rebuilt: same messages, new UIDVALIDITY.
      const c = await w.imap("6003");
      const raws: Buffer[] = [];
      for await (const m of c.fetch("1:*", { source: true })) raws.push(m.source!);
      await c.logout();
      await w.dc.doveadm("expunge", "-u", "6003", "mailbox", "INBOX", "all");
      await w.dc.doveadm("mailbox", "update", "-u", "6003", "--uid-validity", String(Math.floor(Date.now() / 1000) + 12345), "INBOX");
      for (const raw of raws) await w.dc.lda("6003", raw);
    });
    expect(r.uidValidityChanged).toBe(true);
    expect(r.actions.createInGraph).toBe(0);
    expect(r.actions.adopt).toBe(2);
    expect(inbox(userId)).toHaveLength(2);
  }, 30_000);

  it("refuses to mirror an emptied voice store (mass-delete guard) and keeps Exchange intact", async () => {
    const { linkId, userId } = await w.link("6004", "l4@contoso.test");
    for (let i = 0; i < 6; i++) await w.dc.lda("6004", avayaVoiceMessage({ id: `md-${i}` }));
    await expect.poll(() => inbox(userId).length, { timeout: 10_000 }).toBe(6);
    // No run in flight: only the emptied store's own push notification (doveadm's expunge goes
    // through the same push plugin as IMAP and LDA) can start the run that must refuse.
    await drained();
    await w.dc.doveadm("expunge", "-u", "6004", "mailbox", "INBOX", "all");
    await expect.poll(async () => (await w.deps.state.getLink(linkId))?.lastError?.code, { timeout: 10_000 }).toBe("MASS_DELETE_REFUSED");
    expect(inbox(userId)).toHaveLength(6);
  });

  it("copies secure messages as a notice without audio", async () => {
    const { userId } = await w.link("6005", "l5@contoso.test");
    await w.dc.lda("6005", avayaVoiceMessage({ id: "sec-1", sensitivity: "Private" }));
    await expect.poll(() => inbox(userId).length, { timeout: 10_000 }).toBe(1);
    const m = inbox(userId)[0]!;
    expect(m.attachments).toEqual([]);
    expect(m.body.content).toMatch(/call your voice mailbox to listen/);
  });
});

describe("webhook hygiene and bursts", () => {
  it("drops forged notifications and answers validation in text/plain", async () => {
    // Two links out of step: Outlook marked a message unread on 6001 and read on 6005, each change
    // notification lost. One POST carries a forged item for 6001 and a genuine one for 6005: the
    // genuine one runs 6005 (the positive work, seen first); the forged one must not run 6001.
    const forgedLink = await w.deps.state.getLink("L-6001");
    const genuineLink = await w.deps.state.getLink("L-6005");
    for (const [l, isRead] of [[forgedLink!, false], [genuineLink!, true]] as const) {
      w.sim.mailboxFaults.arm(l.userId).dropNotificationsNext = 1;
      w.sim.outlook(l.userId).markRead(inbox(l.userId)[0]!.id, isRead);
      expect(w.sim.mailboxFaults.delivered(l.userId).notificationsDropped).toBeGreaterThanOrEqual(1);
    }
    const [genuineSub] = await w.deps.state.listSubscriptions({ linkId: "L-6005" });
    const sim = w.sim.subscriptions.get(genuineSub!.subscriptionId)!;
    const item = (subscriptionId: string, clientState: string | undefined, userId: string) => ({ subscriptionId, clientState, changeType: "updated", resource: `Users/${userId}/Messages/x`, tenantId: sim.tenantId });
    const warned = lines().filter((l) => l.event === "graph.notification.forged").length;
    const forged = await fetch(`${w.host.url}/api/graph/notifications`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ value: [
      item(genuineSub!.subscriptionId, "L-6001.forged", forgedLink!.userId),
      item(genuineSub!.subscriptionId, sim.clientState, genuineLink!.userId),
    ] }) });
    expect(forged.status).toBe(202);
    await expect.poll(() => storeSeen("6005"), { timeout: 10_000 }).toBe(true);
    expect(lines().filter((l) => l.event === "graph.notification.forged").slice(warned)).toEqual([expect.objectContaining({ forged: 1 })]);
    expect(await storeSeen("6001")).toBe(true); // still read: no run took Outlook's unread across
    const v = await fetch(`${w.host.url}/api/graph/notifications?validationToken=${encodeURIComponent("a b&<c>")}`, { method: "POST" });
    expect(v.status).toBe(200);
    expect(v.headers.get("content-type")).toMatch(/text\/plain/);
    expect(await v.text()).toBe("a b&<c>");
    expect((await fetch(`${w.host.url}/api/graph/notifications`, { method: "POST", body: "not json" })).status).toBe(400);
    expect((await fetch(`${w.host.url}/api/store/notifications/voice-1`, { method: "POST", body: "{}" })).status).toBe(401);
  });

  it("coalesces a burst of triggers for one mailbox", async () => {
    const { linkId, userId } = await w.link("6006", "l6@contoso.test");
    await expect.poll(async () => (await w.deps.state.getLink(linkId))?.lastSyncAt, { timeout: 10_000 }).toBeTruthy();
    await drained();
    // One run alone first: what a single run of this idle mailbox costs in Graph requests.
    let before = w.sim.stats.byMailbox.get(userId) ?? 0;
    await enqueueSync(w.deps.syncQueue, { linkId, reason: "poll", at: Date.now() });
    await expect.poll(() => (w.sim.stats.byMailbox.get(userId) ?? 0) > before, { timeout: 10_000 }).toBe(true);
    await drained();
    const perRun = (w.sim.stats.byMailbox.get(userId) ?? 0) - before;
    const coalescedBefore = lines().filter((l) => l.event === "mailbox.run.coalesced" && l.linkId === linkId).length;
    before = w.sim.stats.byMailbox.get(userId) ?? 0;
    await Promise.all(Array.from({ length: 20 }, () => enqueueSync(w.deps.syncQueue, { linkId, reason: "poll", at: Date.now() })));
    await drained(); // every message of the burst handled (the queue's count includes invisible ones)
    const requests = (w.sim.stats.byMailbox.get(userId) ?? 0) - before;
    const coalesced = lines().filter((l) => l.event === "mailbox.run.coalesced" && l.linkId === linkId).length - coalescedBefore;
    expect(requests).toBeGreaterThanOrEqual(perRun); // the burst was worked on ...
    expect(coalesced).toBeGreaterThan(0); // ... runs met a run in progress and folded into it ...
    expect(requests).toBeLessThan(20 * perRun); // ... so the burst cost less than 20 separate runs
  });
});
