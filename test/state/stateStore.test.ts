import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAzurite, type AzuriteHandle } from "../harness/azurite.js";
import { StateStore } from "../../src/state/stateStore.js";
import { rewriteRow } from "../../src/state/tables.js";
import { ConnectorError, isConnectorError } from "../../src/errors.js";

let az: AzuriteHandle;
let clock = Date.UTC(2026, 10, 24, 12);
const now = () => clock;
let store: StateStore;
let n = 0;
const fresh = () => new StateStore({ connectionString: az.connectionString, tablePrefix: `t${Date.now() % 100000}x${n++}` }, now);

beforeAll(async () => {
  az = await startAzurite();
  store = fresh();
});
afterAll(async () => { await az?.stop(); });

const link = (linkId: string, voiceMailbox: string, userId: string) => ({ linkId, tenantId: "t1", endpointId: "avaya-1", voiceMailbox, userId, upn: `${userId}@contoso.test`, profileId: "default", state: "enabled" as const });

describe("state store on Table Storage (Azurite)", () => {
  it("stores tenants", async () => {
    await store.upsertTenant({ tenantId: "t1", displayName: "Contoso", grantedRoles: ["Mail.ReadWrite"], status: "active", consentedAt: "2026-11-24T12:00:00Z" });
    expect(await store.getTenant("t1")).toMatchObject({ displayName: "Contoso", grantedRoles: ["Mail.ReadWrite"] });
    expect((await store.listTenants()).map((t) => t.tenantId)).toEqual(["t1"]);
    expect(await store.getTenant("nope")).toBeUndefined();
  });

  it("rewriteRow: writers racing on one row each land (the loser reads again); out of attempts, STATE_CONFLICT", async () => {
    // Break seen red: the etag left off the update -> lost updates (the count ends below 8).
    const c = await fresh().tableClients.client("runs");
    const bump = (attempts: number) => rewriteRow(c, "race", "counter", (row) => ({ n: Number(row?.n ?? 0) + 1 }), { attempts });
    await bump(1);
    await Promise.all(Array.from({ length: 7 }, () => bump(20)));
    expect(Number((await c.getEntity("race", "counter")).n)).toBe(8);
    // A change that answers nothing writes nothing.
    expect(await rewriteRow(c, "race", "counter", () => undefined, { attempts: 1 })).toBe(false);
    // One attempt each: some lose, and say so.
    const outcomes = await Promise.allSettled(Array.from({ length: 6 }, () => bump(1)));
    const lost = outcomes.filter((o) => o.status === "rejected").map((o) => (o as PromiseRejectedResult).reason);
    expect(lost.length).toBeGreaterThan(0);
    for (const e of lost) expect(isConnectorError(e, "STATE_CONFLICT")).toBe(true);
    expect(Number((await c.getEntity("race", "counter")).n)).toBe(8 + outcomes.length - lost.length);
  });

  it("announced writes: each answers one report, an APPEND whatever its UID, per link and kind; too many to hold announce none", async () => {
    // Breaks seen red: the append count not taken down (a third push of appends taken); the row
    // keyed by the link only (not its kind); the announcement written whatever its size (the
    // upsert is refused); appends announced one list entry each (5,000 do not fit a property).
    const s = fresh();
    await s.expectEchoes("L9", { store: [{ uid: 0, kind: "append" }, { uid: 0, kind: "append" }, { uid: 7, kind: "flags" }, { uid: 7, kind: "expunge" }], graph: [{ id: "AAMk1", change: "updated" }] }, "contacts");
    // The voicemail row of the same link is another row.
    expect(await s.takeStoreEchoes("L9", [{ uid: 7, kind: "flags" }])).toBe(false);
    // Three appends against two announced: not all ours, nothing taken.
    expect(await s.takeStoreEchoes("L9", [{ uid: 40, kind: "append" }, { uid: 41, kind: "append" }, { uid: 42, kind: "append" }], "contacts")).toBe(false);
    expect(await s.takeStoreEchoes("L9", [{ uid: 40, kind: "append" }], "contacts")).toBe(true);
    expect(await s.takeStoreEchoes("L9", [{ uid: 41, kind: "append" }, { uid: 7, kind: "flags" }], "contacts")).toBe(true);
    expect(await s.takeStoreEchoes("L9", [{ uid: 42, kind: "append" }], "contacts")).toBe(false);
    expect(await s.takeStoreEchoes("L9", [{ uid: 7, kind: "expunge" }], "contacts")).toBe(true);
    expect(await s.takeGraphEchoes("L9", [{ id: "AAMk1", change: "updated" }], "contacts")).toBe(true);
    expect(await s.takeGraphEchoes("L9", [{ id: "AAMk1", change: "updated" }], "contacts")).toBe(false);
    // More Graph ids than a Table property holds: none announced (the run's echo starts one run).
    const many = Array.from({ length: 400 }, (_, i) => ({ id: `AAMkAGI2TG93AAA${"x".repeat(140)}${i}`, change: "updated" as const }));
    await s.expectEchoes("L9", { store: [], graph: many }, "contacts");
    expect(await s.takeGraphEchoes("L9", [many[0]!], "contacts")).toBe(false);
    // A bulk run's appends are a count: 5,000 announced, a MULTIAPPEND's push of 50 is taken.
    await s.expectEchoes("L9", { store: Array.from({ length: 5000 }, () => ({ uid: 0, kind: "append" as const })), graph: [] }, "contacts");
    expect(await s.takeStoreEchoes("L9", Array.from({ length: 50 }, (_, i) => ({ uid: 100 + i, kind: "append" as const })), "contacts")).toBe(true);
  });

  it("announced writes: the next run's announcement keeps what the last one announced and was not reported yet, until it expires", async () => {
    // Break seen red: expectEchoes replacing the row (the old behaviour): the first run's
    // Graph write is no longer taken after the second run announced its own.
    const s = fresh();
    await s.expectEchoes("L7", { store: [{ uid: 3, kind: "flags" }], graph: [{ id: "AAMkMove", change: "deleted" }] });
    expect(await s.takeStoreEchoes("L7", [{ uid: 3, kind: "flags" }])).toBe(true);
    // The next run starts before Graph's notification of the first run's move arrives.
    await s.expectEchoes("L7", { store: [{ uid: 3, kind: "expunge" }, { uid: 0, kind: "append" }], graph: [] });
    expect(await s.takeGraphEchoes("L7", [{ id: "AAMkMove", change: "deleted" }])).toBe(true);
    expect(await s.takeStoreEchoes("L7", [{ uid: 3, kind: "expunge" }, { uid: 9, kind: "append" }])).toBe(true);
    // A reported write is not kept: the flags push above answered once.
    expect(await s.takeStoreEchoes("L7", [{ uid: 3, kind: "flags" }])).toBe(false);
    // An expired announcement is not carried into the next one.
    await s.expectEchoes("L7", { store: [], graph: [{ id: "AAMkOld", change: "updated" }] }, "voicemail", 60);
    clock += 61_000;
    await s.expectEchoes("L7", { store: [], graph: [{ id: "AAMkNew", change: "updated" }] });
    expect(await s.takeGraphEchoes("L7", [{ id: "AAMkOld", change: "updated" }])).toBe(false);
    expect(await s.takeGraphEchoes("L7", [{ id: "AAMkNew", change: "updated" }])).toBe(true);
  });

  it("keeps one voice mailbox <-> one Exchange mailbox", async () => {
    const s = fresh();
    const a = await s.createLink(link("L1", "4711", "u1"));
    expect(a.etag).toBeTruthy();
    const sameVoice = await s.createLink(link("L2", "4711", "u2")).catch((e) => e);
    expect(isConnectorError(sameVoice, "CONFLICT") && sameVoice.message).toMatch(/voice mailbox 4711 .*already linked/);
    const sameUser = await s.createLink(link("L3", "4712", "u1")).catch((e) => e);
    expect(isConnectorError(sameUser, "CONFLICT") && sameUser.message).toMatch(/u1@contoso.test is already linked/);
    // the refused attempts left nothing behind: the free sides can still be linked
    await expect(s.createLink(link("L4", "4712", "u2"))).resolves.toMatchObject({ linkId: "L4" });
    expect((await s.findLinkByVoice("avaya-1", "4711"))?.linkId).toBe("L1");
    expect((await s.findLinkByUser("t1", "u2"))?.linkId).toBe("L4");
    // after a delete, both sides are free again (re-enable without duplicates)
    await s.deleteLink("L1");
    await expect(s.createLink(link("L5", "4711", "u1"))).resolves.toMatchObject({ linkId: "L5" });
  });

  it("guards link updates with ETags", async () => {
    const s = fresh();
    const l = await s.createLink(link("L1", "4711", "u1"));
    const a = await s.updateLink({ ...l, state: "paused" });
    const stale = await s.updateLink({ ...l, state: "disabled" }).catch((e) => e);
    expect(isConnectorError(stale, "STATE_CONFLICT")).toBe(true);
    expect((await s.getLink("L1"))?.state).toBe("paused");
    const m = await s.modifyLink("L1", (x) => ({ ...x, unreadVoice: 3 }));
    expect(m.etag).not.toBe(a.etag);
    expect((await s.listLinks({ withUnreadVoice: true })).map((x) => x.linkId)).toEqual(["L1"]);
  });

  it("keeps item states and cursors per link", async () => {
    const s = fresh();
    const vs = s.voicemailState("L1");
    expect(await vs.loadCursors()).toEqual({});
    await vs.putItem({ syncKey: "k/1#?", imapUid: 1, agreedSeen: false, pendingCreate: true });
    await vs.putItem({ syncKey: "k2", imapUid: 2, graphId: "g2", agreedSeen: true, pendingCreate: false, skipped: { code: "AUDIO_MISSING", message: "no audio" } });
    expect((await vs.loadItems()).sort((a, b) => a.syncKey.localeCompare(b.syncKey))).toEqual([
      { syncKey: "k/1#?", imapUid: 1, graphId: undefined, agreedSeen: false, pendingCreate: true, skipped: undefined },
      { syncKey: "k2", imapUid: 2, graphId: "g2", agreedSeen: true, pendingCreate: false, skipped: { code: "AUDIO_MISSING", message: "no audio" } },
    ]);
    await vs.deleteItem("k/1#?");
    await vs.deleteItem("missing");
    expect((await vs.loadItems()).map((i) => i.syncKey)).toEqual(["k2"]);
    const deltaLink = "https://graph.microsoft.com/v1.0/users/u/mailFolders/inbox/messages/delta?$deltatoken=" + "x".repeat(3000);
    await vs.saveCursors({ imap: { uidValidity: 1795348896, highestModseq: "18446744073709551615", uidNext: 7 }, deltaLink });
    expect(await vs.loadCursors()).toEqual({ imap: { uidValidity: 1795348896, highestModseq: "18446744073709551615", uidNext: 7 }, deltaLink });
    expect(await s.voicemailState("L2").loadItems()).toEqual([]);
  });

  it("reads items by key and by UID or Exchange id, and says when the counts kept with the cursors are stale", async () => {
    const s = fresh();
    const run1 = s.voicemailState("L1");
    expect(await run1.loadCursors()).toEqual({});
    await run1.putItem({ syncKey: "k1", imapUid: 1, graphId: "AAMk/1=", agreedSeen: false, pendingCreate: false });
    await run1.putItem({ syncKey: "k2", imapUid: 2, graphId: "AAMk/2=", agreedSeen: true, pendingCreate: false });
    await run1.saveCursors({ deltaLink: "d1", counts: { linked: 2, unread: 1, skipped: 0 } });
    // index rows sort apart: a listing of items reads none of them
    expect((await s.voicemailState("L1").loadItems()).map((r) => r.syncKey).sort()).toEqual(["k1", "k2"]);

    const run2 = s.voicemailState("L1");
    expect(await run2.loadCursors()).toEqual({ deltaLink: "d1", counts: { linked: 2, unread: 1, skipped: 0 } });
    expect((await run2.loadItemsByKey!(["k2", "nope"])).map((r) => r.syncKey)).toEqual(["k2"]);
    const found = await run2.lookupKeys!({ uids: [1, 9], graphIds: ["AAMk/2=", "other"] });
    expect([...found.byUid]).toEqual([[1, "k1"]]);
    expect([...found.byGraphId]).toEqual([["AAMk/2=", "k2"]]);
    // the message moved to UID 5: both index rows name k1; the old one is recognised by the record
    await run2.putItem({ syncKey: "k1", imapUid: 5, graphId: "AAMk/1=", agreedSeen: false, pendingCreate: false });
    // a run stops after a write, before its cursors: the next one is told its counts are stale
    expect((await s.voicemailState("L1").loadCursors()).countsStale).toBe(true);
    const run3 = s.voicemailState("L1");
    await run3.loadCursors();
    await run3.saveCursors({ deltaLink: "d3", counts: { linked: 2, unread: 1, skipped: 0 } });
    expect((await s.voicemailState("L1").loadCursors()).countsStale).toBeUndefined();
    expect((await s.voicemailState("L1").lookupKeys!({ uids: [1, 5], graphIds: [] })).byUid).toEqual(new Map([[1, "k1"], [5, "k1"]]));
    expect((await s.voicemailState("L1").loadItemsByKey!(["k1"]))[0]!.imapUid).toBe(5);
  });

  it("notes a reindexed voicemail partition once, and every later run's mark keeps the note", async () => {
    const s = fresh();
    const first = s.voicemailState("L1");
    expect((await first.loadCursors()).indexed).toBeUndefined();
    await first.reindex!([]); // a new link: nothing to index, only the note
    expect(await s.voicemailState("L1").loadCursors()).toEqual({ indexed: true });
    // Later runs write their own mark with their first put (Merge: the note stays), and their cursors.
    const later = s.voicemailState("L1");
    await later.loadCursors();
    await later.putItem({ syncKey: "k1", imapUid: 1, graphId: "g1", agreedSeen: false, pendingCreate: false });
    expect((await s.voicemailState("L1").loadCursors()).indexed).toBe(true);
    await later.saveCursors({ deltaLink: "d1", counts: { linked: 1, unread: 1, skipped: 0 } });
    expect(await s.voicemailState("L1").loadCursors()).toEqual({ deltaLink: "d1", counts: { linked: 1, unread: 1, skipped: 0 }, indexed: true });
    // A partition that was never reindexed says so, whatever its runs wrote.
    const other = s.voicemailState("L2");
    await other.putItem({ syncKey: "k1", imapUid: 1, agreedSeen: false, pendingCreate: true });
    expect((await s.voicemailState("L2").loadCursors()).indexed).toBeUndefined();
  });

  it("checks the run's write permission before each Table write of a record port, the group commit's and the index rows' too", async () => {
    const s = fresh();
    let held = true;
    const beforeWrite = () => { if (!held) throw new ConnectorError("LEASE_LOST", "the run is over"); };
    type Rec = { syncKey: string; imapUid?: number; graphId?: string };
    const first = s.recordState<Rec, { deltaLink?: string }>("L7", "contacts", { beforeWrite });
    await first.loadItems(); // a first run: its index rows wait for the cursors
    await first.putItem({ syncKey: "c1", imapUid: 1, graphId: "AAMk1" });
    // The run is over (its lease released) while the port still holds index rows to write.
    held = false;
    await expect(first.saveCursors({ deltaLink: "d1" })).rejects.toMatchObject({ code: "LEASE_LOST" });
    const later = s.recordState<Rec, { deltaLink?: string }>("L7", "contacts");
    expect((await later.lookupKeys!({ uids: [1], graphIds: ["AAMk1"] })).byUid.size).toBe(0);
    expect(await later.loadCursors()).toBeUndefined();
    // A put made while held but sent after: refused, nothing written.
    held = true;
    const second = s.recordState<Rec, { deltaLink?: string }>("L7", "contacts", { beforeWrite });
    const p1 = second.putItem({ syncKey: "c2", imapUid: 2 });
    const p2 = second.putItem({ syncKey: "c3", imapUid: 3 }); // waits for p1's transaction
    held = false;
    await expect(Promise.all([p1.catch(() => undefined), p2])).rejects.toMatchObject({ code: "LEASE_LOST" });
    expect((await later.loadItems()).map((r) => r.syncKey).sort()).not.toContain("c3");
  });

  it("reads a corrupt item row as a skipped record (STATE_CORRUPT), the others as they are", async () => {
    const s = fresh();
    const vs = s.voicemailState("L1");
    await vs.putItem({ syncKey: "ok", imapUid: 1, agreedSeen: true, pendingCreate: false });
    const c = await s.tableClients.client("items");
    await c.upsertEntity({ partitionKey: "L1", rowKey: "bad", syncKey: "bad", imapUid: "one", agreedSeen: true }, "Replace");
    await c.upsertEntity({ partitionKey: "L1", rowKey: "nokey", agreedSeen: false }, "Replace");
    const all = (await vs.loadItems()).sort((a, b) => a.syncKey.localeCompare(b.syncKey));
    expect(all.map((r) => [r.syncKey, r.skipped?.code])).toEqual([["bad", "STATE_CORRUPT"], ["nokey", "STATE_CORRUPT"], ["ok", undefined]]);
    expect(all[0]!.skipped!.message).toMatch(/imapUid is not a number/);
    expect((await vs.loadItemsByKey!(["bad"]))[0]!.skipped?.code).toBe("STATE_CORRUPT");
  });

  it("lists thousands of items across pages", async () => {
    const s = fresh();
    const vs = s.voicemailState("big");
    const c = await (s as unknown as { tables: { client(n: string): Promise<import("@azure/data-tables").TableClient> } }).tables.client("items");
    for (let b = 0; b < 2100; b += 100) {
      await c.submitTransaction(Array.from({ length: 100 }, (_, i) => ["create", { partitionKey: "big", rowKey: `k${b + i}`, syncKey: `k${b + i}`, agreedSeen: false, pendingCreate: false }] as const) as never);
    }
    expect((await vs.loadItems()).length).toBe(2100);
  });

  it("lets exactly one of many racing workers hold a lease, and takes over expired ones", async () => {
    const s = fresh();
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => s.acquireLease("L1", `w${i}`, 60)));
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect(isConnectorError(r.reason, "LEASE_HELD")).toBe(true);
    const held = await s.acquireLease("L1", "other", 60).catch((e) => e);
    expect(held.retryAfterSeconds).toBe(60);
    clock += 61_000; // expired
    const race = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => s.acquireLease("L1", `late${i}`, 60)));
    expect(race.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const winner = (race.find((r) => r.status === "fulfilled") as PromiseFulfilledResult<Awaited<ReturnType<StateStore["acquireLease"]>>>).value;
    // the old holder cannot renew or release what it lost
    const old = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<StateStore["acquireLease"]>>>).value;
    await expect(s.renewLease(old, 60)).rejects.toMatchObject({ code: "STATE_CONFLICT" });
    await s.releaseLease(old);
    await expect(s.acquireLease("L1", "third", 60)).rejects.toMatchObject({ code: "LEASE_HELD" });
    const renewed = await s.renewLease(winner, 60);
    await s.releaseLease(renewed);
    await expect(s.acquireLease("L1", "third", 60)).resolves.toMatchObject({ owner: "third" });
  });

  it("coalesces run requests", async () => {
    const s = fresh();
    expect(await s.takeRunRequest("L1")).toBe("none");
    await Promise.all([s.requestRun("L1"), s.requestRun("L1"), s.requestRun("L1")]);
    expect(await s.takeRunRequest("L1")).toBe("run");
    expect(await s.takeRunRequest("L1")).toBe("none");
    // A full request survives plain ones that follow it.
    await s.requestRun("L1", true);
    await s.requestRun("L1");
    expect(await s.takeRunRequest("L1")).toBe("full");
  });

  it("stores subscriptions and finds those about to expire", async () => {
    const s = fresh();
    await s.putSubscription({ subscriptionId: "s1", linkId: "L1", tenantId: "t1", resource: "users/u1/mailFolders/inbox/messages", expiresAt: "2026-11-25T00:00:00.000Z", status: "active" });
    await s.putSubscription({ subscriptionId: "s2", linkId: "L2", tenantId: "t1", resource: "users/u2/mailFolders/inbox/messages", expiresAt: "2026-11-30T00:00:00.000Z", status: "active" });
    expect((await s.listSubscriptions({ expiringBefore: new Date("2026-11-26T00:00:00Z") })).map((x) => x.subscriptionId)).toEqual(["s1"]);
    expect((await s.getSubscription("s2"))?.linkId).toBe("L2");
    await s.deleteSubscription("s2");
    await s.deleteSubscription("s2");
    expect(await s.getSubscription("s2")).toBeUndefined();
  });

  it("uses consent nonces once", async () => {
    expect(await store.useNonceOnce("n1", 1)).toBe(true);
    expect(await store.useNonceOnce("n1", 1)).toBe(false);
  });

  it("reads an unreachable store as STATE_UNAVAILABLE (transient)", async () => {
    const dead = new StateStore({ connectionString: az.connectionString.replace(/TableEndpoint=http:\/\/127.0.0.1:\d+/, "TableEndpoint=http://127.0.0.1:9"), tablePrefix: "dead" }, now);
    const err = await dead.getLink("x").catch((e) => e);
    expect(isConnectorError(err, "STATE_UNAVAILABLE") && err.transient).toBe(true);
  }, 60_000);
});
