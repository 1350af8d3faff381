/**
 * State access that follows the changes, not the mailbox (issue #19, point 1), through the real
 * trigger paths (store push, Graph change notification -> queue -> worker), every safety-net
 * timer off:
 *  - an incremental run reads only the item records its changes name (the run's
 *    `voicemail.sync.done` line says how many it read), while a full run reads them all;
 *  - an item row that cannot be read is recorded (STATE_CORRUPT, skipped, logged) and left
 *    alone; the mailbox's other messages keep syncing, incremental and full runs alike.
 * Breaks seen red: `sparse` forced false in syncVoicemail -> "reads only the records ..."
 * (the deposit's run read 30 records instead of 0); toItem's checks removed (the corrupt row's
 * imapUid "abc" taken as is) -> "a corrupt item row ..." (the run fails: the new voice message
 * never reaches Outlook).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SAFETY_NET_TIMERS, startWorld, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { enqueueSync } from "../../src/app/syncQueue.js";
import { runSyncRequest } from "../../src/app/voicemail.js";

let w: World;
let userId = "";
const LINK = "L-4711";
const inbox = () => w.sim.outlook(userId).messages("inbox");
const doneLines = () => ((w.log as { lines?: Array<Record<string, unknown>> }).lines ?? []).filter((l) => l.event === "voicemail.sync.done" && l.linkId === LINK);
const seenOnStore = () => w.seenOnStore("4711");

beforeAll(async () => {
  w = await startWorld({ users: ["4711"], disabledFunctions: SAFETY_NET_TIMERS });
  ({ userId } = await w.link("4711", "alice@contoso.test"));
  await w.queueDrained();
  for (let i = 0; i < 30; i++) await w.dc.lda("4711", avayaVoiceMessage({ id: `scale-${i}`, seconds: 3 }));
  for (const until = Date.now() + 60_000; inbox().length < 30;) {
    if (Date.now() > until) throw new Error(`only ${inbox().length} of 30 voice messages reached Outlook`);
    await new Promise((r) => setTimeout(r, 250));
  }
  await w.queueDrained();
}, 120_000);
afterAll(async () => { await w?.stop(); });

describe("state access that grows with the changes", () => {
  it("reads only the records its changes name on incremental runs, every record on full runs", async () => {
    const from = doneLines().length;
    await w.dc.lda("4711", avayaVoiceMessage({ id: "scale-new", seconds: 3 }));
    await expect.poll(() => inbox().length, { timeout: 10_000 }).toBe(31);
    await w.queueDrained();
    w.sim.outlook(userId).markRead(inbox()[0]!.id);
    await expect.poll(async () => Object.values(await seenOnStore()).filter(Boolean).length, { timeout: 10_000 }).toBe(1);
    await w.queueDrained();
    const incremental = doneLines().slice(from);
    expect(incremental.map((l) => Number(l.createInGraph ?? 0) + Number(l.setImapSeen ?? 0))).toEqual([1, 1]);
    // The deposit names a message no record holds yet; the read names one record. The delta
    // since the previous run may still carry that run's own create (its Graph-side echo, when no
    // run came between), one record more: <= 1 and <= 2.
    expect(incremental[0]!.itemsRead).toBeLessThanOrEqual(1);
    expect(incremental[1]!.itemsRead).toBeGreaterThanOrEqual(1);
    expect(incremental[1]!.itemsRead).toBeLessThanOrEqual(2);
    // The counts kept with the cursors stay exact: 31 linked, 30 unread.
    expect((await w.deps.state.voicemailState(LINK).loadCursors()).counts).toEqual({ linked: 31, unread: 30, skipped: 0 });
    expect((await w.deps.state.getLink(LINK))?.unreadVoice).toBe(30);

    // A full run (the reconcile's request, run here to read its report) reads all of them and
    // finds the same counts.
    const full = await runSyncRequest(w.deps, { linkId: LINK, reason: "reconcile", at: Date.now() });
    expect(full.status === "ran" && full.report.itemsRead).toBe(31);
    expect((await w.deps.state.voicemailState(LINK).loadCursors()).counts).toEqual({ linked: 31, unread: 30, skipped: 0 });
  });

  it("a corrupt item row is recorded and skipped, and never fails the mailbox", async () => {
    const records = await w.deps.state.voicemailState(LINK).loadItems();
    const victim = records.find((r) => !r.agreedSeen && r.graphId)!;
    const items = await w.deps.state.tableClients.client("items");
    const row = await items.getEntity<Record<string, unknown>>(LINK, victim.syncKey.replace(/[^A-Za-z0-9._@+=-]/g, (c) => "~" + c.codePointAt(0)!.toString(16).padStart(4, "0")));
    await items.updateEntity({ ...row, partitionKey: row.partitionKey!, rowKey: row.rowKey!, imapUid: "abc", agreedSeen: "maybe" }, "Replace");

    // Outlook reads the corrupt item and a new voice message arrives: the new one is copied,
    // the corrupt one is left alone (its store message stays unread), the run does not fail.
    const before = await seenOnStore();
    w.sim.outlook(userId).markRead(victim.graphId!);
    await w.dc.lda("4711", avayaVoiceMessage({ id: "scale-after-corrupt", seconds: 3 }));
    await expect.poll(() => inbox().length, { timeout: 10_000 }).toBe(32);
    await w.queueDrained();
    expect(await seenOnStore()).toEqual({ ...before, 32: false });
    const link = await w.deps.state.getLink(LINK);
    expect(link?.lastError).toBeUndefined();
    expect(link?.skippedItems).toBe(1);
    const lines = (w.log as { lines?: Array<Record<string, unknown>> }).lines ?? [];
    expect(lines.some((l) => l.event === "voicemail.state.corrupt" && l.code === "STATE_CORRUPT")).toBe(true);

    // A full run lists every row: the corrupt one is skipped again, nothing is deleted for it.
    await enqueueSync(w.deps.syncQueue, { linkId: LINK, reason: "reconcile", at: Date.now() });
    await w.queueDrained();
    const after = await w.deps.state.getLink(LINK);
    expect(after?.lastError).toBeUndefined();
    expect(Date.parse(after!.lastSyncAt!)).toBeGreaterThan(Date.parse(link!.lastSyncAt!));
    expect(inbox().some((m) => m.id === victim.graphId)).toBe(true);
    expect(Object.keys(await seenOnStore())).toHaveLength(32);
    const stored = (await w.deps.state.voicemailState(LINK).loadItems()).find((r) => r.syncKey === victim.syncKey);
    expect(stored?.skipped?.code).toBe("STATE_CORRUPT");
  });
});
