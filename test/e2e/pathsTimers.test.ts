/**
 * Each timer path alone. The world runs with the fast read check and every safety-net timer
 * disabled (AzureWebJobs.<name>.Disabled, SAFETY_NET_TIMERS), the store's push off, and Graph
 * change notifications for the test's mailbox dropped (armed per mailbox, counted as dropped).
 * So the only thing that can carry a change across is the one timer function the test runs
 * through the host's master-key endpoint; each check also reads the run's recorded reason
 * (the voicemail.sync.done log line) to show which trigger did the work.
 *
 * Breaks seen red (each restored):
 *  - poll enqueues nothing (functions/timers.ts pollStoresFunction handler body emptied) ->
 *    "poll alone: copies a deposit, ..." times out waiting for the copy;
 *  - the poll's store check answering every due kind (src/app/storePoll.ts checkStore) ->
 *    "poll alone ..." counts one more run for a quiet store;
 *  - the poll without the fast read's check for unread voicemail on a quiet store
 *    (src/app/schedule.ts pollLinks) -> "poll alone ..." times out waiting for \Seen;
 *  - the check answering no kind -> "poll alone ..." times out waiting for the copy.
 * That the disabled timers really stay off is test/host/disabledFunctions.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runReasons, runsOf, SAFETY_NET_TIMERS, startWorld, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { LINK_BUCKETS } from "../../src/state/links.js";
import { runsMade } from "../../src/app/syncWorker.js";

let w: World;
const inbox = (userId: string) => w.sim.outlook(userId).messages("inbox");
/** The Outlook copy of the store message from `caller` (copies are made in parallel, so the inbox's order is not the store's UID order). */
const copyOf = (userId: string, caller: string) => inbox(userId).find((m) => String(m.subject).includes(caller))!.id;

/** Reasons of the runs whose report shows `action` (the run's recorded outcome). */
const reasonsFor = (linkId: string, action: string, trigger: string) => runReasons(w, linkId, action, trigger);

/** \Seen per message in store order (UIDs ascend); [] while the store is unreachable. */
const seen = (mailbox: string) => w.seenOnStore(mailbox).then((s) => Object.values(s), () => [] as boolean[]);

/** Links a mailbox, waits for its first run, and makes Graph lose every notification for it. */
async function isolated(mailbox: string, upn: string) {
  const { linkId, userId } = await w.link(mailbox, upn);
  await expect.poll(async () => (await w.deps.state.getLink(linkId))?.lastSyncAt, { timeout: 15_000 }).toBeTruthy();
  w.sim.mailboxFaults.arm(userId).dropNotificationsNext = 1_000_000;
  return { linkId, userId };
}

/** Graph requests made for this mailbox so far (the simulator's count). */
const graphRequests = (userId: string) => w.sim.stats.byMailbox.get(userId) ?? 0;

/** Poll skips a link that ran within the last minute (its run made the poll's check); this one last ran 2 minutes ago. */
const ranLongAgo = (linkId: string) => w.deps.state.modifyLink(linkId, (l) => ({ ...l, lastSyncAt: new Date(Date.now() - 120_000).toISOString() }));

/** Outlook marks the copy read; the change notification is lost (and counted as lost). */
async function readInOutlookUnnoticed(userId: string, id: string) {
  const dropped = w.sim.mailboxFaults.delivered(userId).notificationsDropped;
  w.sim.outlook(userId).markRead(id);
  expect(w.sim.mailboxFaults.delivered(userId).notificationsDropped).toBeGreaterThan(dropped);
}

beforeAll(async () => {
  w = await startWorld({ users: ["5311", "5312", "5313", "5314"], disabledFunctions: SAFETY_NET_TIMERS, storePush: false });
}, 60_000);
afterAll(async () => { await w?.stop(); });

describe("one path at a time: timers (no push, no Graph notifications, no other timer)", () => {
  it("poll alone: copies a deposit, carries phone-side changes and an unnoticed Outlook read; a quiet store gets no run", async () => {
    // The poll asks the store (a login and STATUS, src/app/storePoll.ts) and runs only what moved
    // there; for unread voicemail on a quiet store it asks for the fast read's check (the lamp).
    const { linkId, userId } = await isolated("5311", "p1@contoso.test");
    await w.dc.lda("5311", avayaVoiceMessage({ id: "poll-1", caller: "Poll One" }));
    await w.dc.lda("5311", avayaVoiceMessage({ id: "poll-2", caller: "Poll Two" }));
    expect(inbox(userId)).toHaveLength(0); // no push: nothing has seen the deposit yet
    await ranLongAgo(linkId);
    await w.runFunction("pollStores");
    await expect.poll(() => inbox(userId).length, { timeout: 15_000 }).toBe(2);
    await expect.poll(() => reasonsFor(linkId, "createInGraph", "poll"), { timeout: 5000 }).toEqual(["poll"]);

    // The store is quiet, the voicemail unread and left longer ago than the fast read's window:
    // the poll's run is the fast read's check, which finds the read in Outlook.
    // Break seen red: without that run -> \Seen never set.
    await readInOutlookUnnoticed(userId, copyOf(userId, "Poll One"));
    await w.deps.state.modifyLink(linkId, (l) => ({ ...l, fastUntil: Math.floor(Date.now() / 1000) - 1 }));
    await ranLongAgo(linkId);
    await w.runFunction("pollStores");
    await expect.poll(() => seen("5311"), { timeout: 15_000 }).toEqual([true, false]);
    await expect.poll(() => reasonsFor(linkId, "setImapSeen", "poll"), { timeout: 5000 }).toEqual(["fast-read"]);

    const c = await w.imap("5311");
    await c.messageFlagsRemove("1", ["\\Seen"]);
    await c.messageDelete("2");
    await c.logout();
    await ranLongAgo(linkId);
    await w.runFunction("pollStores");
    await expect.poll(() => inbox(userId).map((m) => m.isRead), { timeout: 15_000 }).toEqual([false]);
    expect(w.sim.outlook(userId).messages("deleteditems")).toHaveLength(1);
    await expect.poll(() => reasonsFor(linkId, "setGraphRead", "poll"), { timeout: 5000 }).toEqual(["poll"]);
    await expect.poll(() => reasonsFor(linkId, "deleteInGraph", "poll"), { timeout: 5000 }).toEqual(["poll"]);

    // Heard on the phone: carried to Outlook; then nothing is unread and nothing changes.
    const p = await w.imap("5311");
    await p.messageFlagsAdd("1", ["\\Seen"]);
    await p.logout();
    await ranLongAgo(linkId);
    await w.runFunction("pollStores");
    await expect.poll(() => inbox(userId).map((m) => m.isRead), { timeout: 15_000 }).toEqual([true]);
    await expect.poll(async () => (await w.deps.state.getLink(linkId))?.unreadVoice, { timeout: 5000 }).toBe(0);
    await w.queueDrained();

    // Nothing changed on the store, nothing unread: the check (a login and a STATUS) asks for no run.
    // Break seen red: checkStore answering every due kind -> one more run.
    const before = runsOf("voicemail", linkId);
    await ranLongAgo(linkId);
    // Every shard of this poll has done its work (a shard's run counts once its runs are enqueued).
    const shardRuns = () => [...runsMade].filter(([k]) => k.startsWith("schedule|")).reduce((a, [, n]) => a + n, 0);
    const shards = shardRuns();
    await w.runFunction("pollStores");
    await expect.poll(shardRuns, { timeout: 15_000 }).toBeGreaterThanOrEqual(shards + w.deps.config.sync.scheduleShards);
    await w.queueDrained();
    expect(runsOf("voicemail", linkId)).toBe(before);
  }, 90_000);

  it("reconcile alone: copies, read both ways and deletes, whatever ran last", async () => {
    const { linkId, userId } = await isolated("5312", "p2@contoso.test");
    await w.dc.lda("5312", avayaVoiceMessage({ id: "rec-1", caller: "Rec One" }));
    await w.dc.lda("5312", avayaVoiceMessage({ id: "rec-2", caller: "Rec Two" }));
    expect(inbox(userId)).toHaveLength(0);
    await w.runFunction("reconcile"); // reconcile does not skip links that just ran
    await expect.poll(() => inbox(userId).length, { timeout: 15_000 }).toBe(2);
    await readInOutlookUnnoticed(userId, copyOf(userId, "Rec One"));
    const c = await w.imap("5312");
    await c.messageDelete("2");
    await c.logout();
    await w.runFunction("reconcile");
    await expect.poll(() => seen("5312"), { timeout: 15_000 }).toEqual([true]);
    await expect.poll(() => inbox(userId).length, { timeout: 15_000 }).toBe(1);
    for (const action of ["createInGraph", "setImapSeen", "deleteInGraph"]) await expect.poll(() => reasonsFor(linkId, action, "reconcile"), { timeout: 5000, message: action }).toEqual(["reconcile"]);
  }, 60_000);

  it("fast read alone: an Outlook read reaches the store by the fast read check, no notification", async () => {
    const { linkId, userId } = await isolated("5313", "p3@contoso.test");
    await w.dc.lda("5313", avayaVoiceMessage({ id: "fr-1" }));
    await w.runFunction("reconcile"); // the copy, and unreadVoice = 1 on the link (what fast read selects on)
    await expect.poll(() => inbox(userId).length, { timeout: 15_000 }).toBe(1);
    await expect.poll(async () => (await w.deps.state.getLink(linkId))?.unreadVoice, { timeout: 15_000 }).toBe(1);
    // The check skips a link that ran within its interval (1 s in this world): wait it out, on the recorded time.
    const waitOutInterval = async () => {
      const last = Date.parse((await w.deps.state.getLink(linkId))!.lastSyncAt!);
      await new Promise((r) => setTimeout(r, Math.max(0, last + 1_100 - Date.now())));
    };
    // Nothing new in Outlook: the check reads the delta and ends there, no store login, no write.
    // Break seen red: quietFastRead (src/app/voicemail.ts) never quiet -> a store login per check.
    await waitOutInterval();
    // Every login counts (the test's own too: it makes none between the two counts).
    const logins = () => w.dc.log().split("\n").filter((l) => /imap-login: Info: Login: /.test(l) && l.includes("5313")).length;
    const before = { logins: logins(), lastSyncAt: (await w.deps.state.getLink(linkId))!.lastSyncAt, graph: graphRequests(userId) };
    await w.runFunction("fastReadCheck");
    await expect.poll(() => graphRequests(userId), { timeout: 10_000 }).toBe(before.graph + 1);
    await w.queueDrained();
    expect(logins()).toBe(before.logins);
    expect((await w.deps.state.getLink(linkId))!.lastSyncAt).toBe(before.lastSyncAt);

    // A read in Outlook: the check carries it to the store (the delta it read is the run's own).
    // Break seen red: the run reading the delta again (the check's read not handed on) -> 2 requests.
    await readInOutlookUnnoticed(userId, inbox(userId)[0]!.id);
    await new Promise((r) => setTimeout(r, 1_100)); // the check's own interval since the last check
    const graphBefore = graphRequests(userId);
    await w.runFunction("fastReadCheck");
    await expect.poll(() => seen("5313"), { timeout: 15_000 }).toEqual([true]);
    await expect.poll(() => reasonsFor(linkId, "setImapSeen", "fast-read"), { timeout: 5000 }).toEqual(["fast-read"]);
    expect(graphRequests(userId)).toBe(graphBefore + 1); // the one delta: read once, used by the run
  }, 60_000);

  it("fast read window: a link whose last change is older than UMC_FAST_READ_WINDOW_SECONDS is not checked; a change opens it again", async () => {
    // Break seen red: listFastLinks (src/state/links.ts) without its window filter -> the closed link is checked (1 request).
    const { linkId, userId } = await isolated("5314", "p4@contoso.test");
    const unread = async () => (await w.deps.state.getLink(linkId))?.unreadVoice;
    await w.dc.lda("5314", avayaVoiceMessage({ id: "fw-1" }));
    await w.runFunction("reconcile");
    await expect.poll(() => inbox(userId).length, { timeout: 15_000 }).toBe(1);
    await expect.poll(unread, { timeout: 15_000 }).toBe(1);
    const listed = async () => (await w.deps.state.listFastLinks([0, LINK_BUCKETS])).includes(linkId);
    expect(await listed()).toBe(true);
    // The copy was its last change, longer ago than the window: unread voicemail alone is no
    // reason to look. (The list the fast check's shards read, asked directly: a check that
    // enqueues nothing cannot be waited for.)
    await w.deps.state.modifyLink(linkId, (l) => ({ ...l, fastUntil: Math.floor(Date.now() / 1000) - 1 }));
    expect(await listed()).toBe(false);
    expect((await w.deps.state.getLink(linkId))?.unreadVoice).toBe(1);
    // A new voice message is a change: the window opens again and the check looks.
    await w.dc.lda("5314", avayaVoiceMessage({ id: "fw-2" }));
    await w.runFunction("reconcile");
    await expect.poll(() => inbox(userId).length, { timeout: 15_000 }).toBe(2);
    await expect.poll(async () => (await w.deps.state.getLink(linkId))?.fastUntil ?? 0, { timeout: 15_000 }).toBeGreaterThan(Date.now() / 1000 + 60);
    expect(await listed()).toBe(true);
    await new Promise((r) => setTimeout(r, 1_100)); // the check's interval (1 s in this world)
    // Each tick through the real timer until the check has looked (a loaded machine may take
    // several seconds to fan a tick out; the check's interval keeps the ticks apart).
    const open = graphRequests(userId);
    await expect.poll(async () => { await w.runFunction("fastReadCheck"); return graphRequests(userId); }, { timeout: 30_000, interval: 1_200 }).toBeGreaterThan(open);
  }, 60_000);
});
