import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { planItem, planVoicemail, type ItemView, type LinkState, type VoicemailAction } from "../../src/sync/voicemailPlanner.js";

const limits = { massDeleteMaxShare: 0.5 };

describe("planItem decision table", () => {
  const link = (agreedSeen: boolean, extra: Partial<LinkState> = {}): LinkState => ({ agreedSeen, imapUid: 1, graphId: "g1", ...extra });
  const cases: Array<[string, ItemView, VoicemailAction["kind"][]]> = [
    ["new on the voice store -> copy", { syncKey: "k", imap: { uid: 1, seen: false } }, ["createInGraph"]],
    ["unchanged -> nothing", { syncKey: "k", link: link(false), imap: { uid: 1, seen: false }, graph: { id: "g1", isRead: false } }, []],
    ["read on the phone -> read in Outlook", { syncKey: "k", link: link(false), imap: { uid: 1, seen: true }, graph: { id: "g1", isRead: false } }, ["setGraphRead"]],
    ["read in Outlook -> \\Seen on the store", { syncKey: "k", link: link(false), imap: { uid: 1, seen: false }, graph: { id: "g1", isRead: true } }, ["setImapSeen"]],
    ["both read -> record", { syncKey: "k", link: link(false), imap: { uid: 1, seen: true }, graph: { id: "g1", isRead: true } }, ["recordAgreed"]],
    ["deleted on the store -> delete in Outlook", { syncKey: "k", link: link(false), graph: { id: "g1", isRead: false } }, ["deleteInGraph"]],
    ["deleted in Outlook -> expunge", { syncKey: "k", link: link(false), imap: { uid: 1, seen: false } }, ["deleteInImap"]],
    ["gone on both -> forget", { syncKey: "k", link: link(true) }, ["forget"]],
    ["pending create, copy not seen -> resume", { syncKey: "k", link: link(false, { pendingCreate: true, graphId: undefined }), imap: { uid: 1, seen: false } }, ["createInGraph"]],
    ["pending create, copy found -> adopt", { syncKey: "k", link: link(false, { pendingCreate: true, graphId: undefined }), imap: { uid: 1, seen: false }, graph: { id: "g9", isRead: false } }, ["adopt"]],
    ["uid moved (UIDVALIDITY) -> adopt", { syncKey: "k", link: link(false), imap: { uid: 7, seen: false }, graph: { id: "g1", isRead: false } }, ["adopt"]],
    ["no row but both hold the key -> adopt", { syncKey: "k", imap: { uid: 1, seen: false }, graph: { id: "g1", isRead: true } }, ["adopt"]],
    ["our copy without original or row -> delete", { syncKey: "k", graph: { id: "g1", isRead: false } }, ["deleteInGraph"]],
  ];
  for (const [name, view, kinds] of cases) it(name, () => expect(planItem(view).map((a) => a.kind)).toEqual(kinds));

  describe("moves and retention are not deletes", () => {
    const both = { imap: { uid: 1, seen: false } };
    it("a copy moved to another Outlook folder keeps its store original and its read state in step", () => {
      expect(planItem({ syncKey: "k", link: link(false), ...both, graph: { id: "g1", isRead: false, elsewhere: true } })).toEqual([]);
      expect(planItem({ syncKey: "k", link: link(false), ...both, graph: { id: "g1", isRead: true, elsewhere: true } }).map((a) => a.kind)).toEqual(["setImapSeen"]);
    });
    it("a copy in Deleted Items deletes the store original and is remembered (restore is not deleted again)", () => {
      expect(planItem({ syncKey: "k", link: link(false), ...both, graphLeft: "trashed" })).toEqual([{ kind: "deleteInImap", syncKey: "k", imapUid: 1, tombstone: true }]);
      expect(planItem({ syncKey: "k", link: link(false), ...both, graphLeft: "purged" })).toEqual([{ kind: "deleteInImap", syncKey: "k", imapUid: 1, tombstone: false }]);
      const tomb = link(false, { detached: "graph", imapUid: undefined });
      expect(planItem({ syncKey: "k", link: tomb, graph: { id: "g1", isRead: false } })).toEqual([]);
      expect(planItem({ syncKey: "k", link: tomb, graphLeft: "trashed" })).toEqual([]);
      expect(planItem({ syncKey: "k", link: tomb, graphLeft: "purged" }).map((a) => a.kind)).toEqual(["forget"]);
    });
    it("a restore of a copy whose store original went to the store's trash brings the original back, with Outlook's read state", () => {
      const trashed = link(false, { detached: "graph", imapUid: undefined, inStoreTrash: true });
      expect(planItem({ syncKey: "k", link: trashed, graph: { id: "g1", isRead: true } })).toEqual([{ kind: "restoreInImap", syncKey: "k", graphId: "g1", seen: true }]);
      // Still in Deleted Items: nothing yet.
      expect(planItem({ syncKey: "k", link: trashed, graphLeft: "trashed" })).toEqual([]);
    });
    it("a copy moved to the archive mailbox leaves the store original alone", () => {
      expect(planItem({ syncKey: "k", link: link(false), ...both, graphLeft: "archived" })).toEqual([{ kind: "detach", syncKey: "k", keep: "imap" }]);
    });
    it("a side set to never propagate keeps its message; a restore links it again", () => {
      expect(planItem({ syncKey: "k", link: link(false), ...both, graphLeft: "trashed" }, { deleteOnStore: false, deleteInExchange: true })).toEqual([{ kind: "detach", syncKey: "k", keep: "imap" }]);
      expect(planItem({ syncKey: "k", link: link(false), graph: { id: "g1", isRead: false } }, { deleteOnStore: true, deleteInExchange: false })).toEqual([{ kind: "detach", syncKey: "k", keep: "graph" }]);
      const kept = link(true, { detached: "imap" });
      expect(planItem({ syncKey: "k", link: kept, imap: { uid: 1, seen: true } })).toEqual([]);
      expect(planItem({ syncKey: "k", link: kept, imap: { uid: 1, seen: true }, graph: { id: "g1", isRead: false } }).map((a) => a.kind)).toEqual(["adopt"]);
      expect(planItem({ syncKey: "k", link: kept }).map((a) => a.kind)).toEqual(["forget"]);
    });
  });

  it("read is sticky when both sides race to different values", () => {
    const onStore = planItem({ syncKey: "k", link: link(true), imap: { uid: 1, seen: true }, graph: { id: "g1", isRead: false } });
    // agreed true, Outlook went unread, store stayed read: only Outlook changed -> copy unread to the store.
    expect(onStore).toEqual([{ kind: "setImapSeen", syncKey: "k", imapUid: 1, seen: false }]);
    const race = planItem({ syncKey: "k", link: { agreedSeen: true, imapUid: 1, graphId: "g1" }, imap: { uid: 1, seen: false }, graph: { id: "g1", isRead: false } });
    expect(race).toEqual([{ kind: "recordAgreed", syncKey: "k", seen: false, imapUid: 1, graphId: "g1" }]);
    const conflict = planItem({ syncKey: "k", link: { agreedSeen: false, imapUid: 1, graphId: "g1" }, imap: { uid: 1, seen: true }, graph: { id: "g1", isRead: true } });
    expect(conflict[0]?.kind).toBe("recordAgreed");
  });
});

describe("mass-delete guard", () => {
  const linked = (n: number, imapPresent: boolean): ItemView[] =>
    Array.from({ length: n }, (_, i) => ({ syncKey: `k${i}`, link: { agreedSeen: false, imapUid: i + 1, graphId: `g${i}` }, imap: imapPresent ? { uid: i + 1, seen: false } : undefined, graph: { id: `g${i}`, isRead: false } }));

  it("refuses to mirror an emptied voice store", () => {
    const plan = planVoicemail(linked(3, false), limits);
    expect(plan.actions).toEqual([]);
    expect(plan.massDelete).toEqual({ side: "graph", deletes: 3, known: 3, emptied: true, pattern: "wipe", refused: true });
  });
  it("refuses more than the allowed share, allows fewer", () => {
    const items = linked(10, true);
    for (let i = 0; i < 6; i++) items[i] = { ...items[i]!, imap: undefined };
    expect(planVoicemail(items, limits).massDelete?.deletes).toBe(6);
    const few = linked(10, true);
    few[0] = { ...few[0]!, imap: undefined };
    expect(planVoicemail(few, limits).actions.map((a) => a.kind)).toEqual(["deleteInGraph"]);
  });
  it("tells the store's aging of its oldest messages from a wipe, and lets aging through", () => {
    const now = Date.parse("2026-11-30T12:00:00Z");
    const day = 86_400_000;
    const items = linked(10, true).map((v, i) => ({ ...v, link: { ...v.link!, receivedAt: now - (40 - i) * day } }));
    for (let i = 0; i < 6; i++) items[i] = { ...items[i]!, imap: undefined };
    const aging = planVoicemail(items, { ...limits, now, agingMinDays: 30 });
    expect(aging.massDelete).toMatchObject({ side: "graph", deletes: 6, pattern: "aging", refused: false });
    expect(aging.actions.filter((a) => a.kind === "deleteInGraph")).toHaveLength(6);
    // The same losses, but one of them is a fresh message: not aging, refused.
    const fresh = items.map((v, i) => (i === 5 ? { ...v, link: { ...v.link!, receivedAt: now - day } } : v));
    expect(planVoicemail(fresh, { ...limits, now, agingMinDays: 30 })).toMatchObject({ actions: [], massDelete: { pattern: "share", refused: true } });
    // Losses that are not the oldest (a newer one lost, an older one kept): refused.
    const holes = items.map((v, i) => (i === 0 ? { ...v, imap: { uid: 1, seen: false } } : i === 6 ? { ...v, imap: undefined } : v));
    expect(planVoicemail(holes, { ...limits, now, agingMinDays: 30 }).massDelete).toMatchObject({ pattern: "share", refused: true });
    // Everything gone is a wipe, however old.
    expect(planVoicemail(items.map((v) => ({ ...v, imap: undefined })), { ...limits, now, agingMinDays: 30 }).massDelete).toMatchObject({ pattern: "wipe", refused: true });
  });
  it("lets an administrator override", () => {
    expect(planVoicemail(linked(3, false), { ...limits, massDeleteOverride: true }).actions).toHaveLength(3);
  });
  it("guards Outlook-side mass deletes too", () => {
    const items = linked(8, true).map((i) => ({ ...i, graph: undefined }));
    expect(planVoicemail(items, limits).massDelete?.side).toBe("imap");
  });
});

/**
 * A model world: both sides as maps, an executor that applies actions the way the real one
 * must (pending row before create, look the key up before resuming), with crashes injected
 * between any two writes. Random histories must converge, and a second plan must be empty.
 */
interface World {
  imap: Map<string, { uid: number; seen: boolean }>;
  graph: Array<{ id: string; syncKey: string; isRead: boolean }>;
  links: Map<string, LinkState>;
  nextUid: number;
  nextGraph: number;
}

/** `lagging`: Exchange's change feed has not reported our own pending creates yet. */
function views(w: World, lagging = false): ItemView[] {
  const keys = new Set<string>([...w.imap.keys(), ...w.graph.map((g) => g.syncKey), ...w.links.keys()]);
  return [...keys].map((syncKey) => {
    const g = lagging && w.links.get(syncKey)?.pendingCreate ? undefined : w.graph.find((x) => x.syncKey === syncKey);
    return { syncKey, link: w.links.get(syncKey), imap: w.imap.get(syncKey), graph: g && { id: g.id, isRead: g.isRead } };
  });
}

class Crash extends Error {}

/** Applies actions; throws Crash after `budget` writes (state row writes and side writes). */
function execute(w: World, actions: VoicemailAction[], budget: { left: number }) {
  const write = () => { if (budget.left-- <= 0) throw new Crash(); };
  for (const a of actions) {
    switch (a.kind) {
      case "createInGraph": {
        if (!a.resume) { write(); w.links.set(a.syncKey, { agreedSeen: a.seen, imapUid: a.imapUid, pendingCreate: true }); }
        const existing = w.graph.find((g) => g.syncKey === a.syncKey); // findBySyncKey
        let id = existing?.id;
        if (!existing) { write(); id = `g${w.nextGraph++}`; w.graph.push({ id, syncKey: a.syncKey, isRead: a.seen }); }
        write(); w.links.set(a.syncKey, { agreedSeen: existing ? existing.isRead || a.seen : a.seen, imapUid: a.imapUid, graphId: id });
        break;
      }
      case "adopt": {
        if (a.setGraphRead) { write(); w.graph.find((g) => g.id === a.graphId)!.isRead = a.seen; }
        if (a.setImapSeen) { write(); w.imap.get(a.syncKey)!.seen = a.seen; }
        write(); w.links.set(a.syncKey, { agreedSeen: a.seen, imapUid: a.imapUid, graphId: a.graphId });
        break;
      }
      case "setGraphRead": write(); w.graph.find((g) => g.id === a.graphId)!.isRead = a.read; write(); w.links.get(a.syncKey)!.agreedSeen = a.read; break;
      case "setImapSeen": write(); w.imap.get(a.syncKey)!.seen = a.seen; write(); w.links.get(a.syncKey)!.agreedSeen = a.seen; break;
      case "recordAgreed": write(); w.links.get(a.syncKey)!.agreedSeen = a.seen; break;
      case "deleteInGraph": write(); w.graph = w.graph.filter((g) => g.id !== a.graphId); write(); w.links.delete(a.syncKey); break;
      case "deleteInImap": write(); w.imap.delete(a.syncKey); write(); w.links.delete(a.syncKey); break;
      case "forget": write(); w.links.delete(a.syncKey); break;
    }
  }
}

type Op =
  | { op: "deposit"; seen: boolean }
  | { op: "imapSeen"; pick: number; seen: boolean }
  | { op: "graphRead"; pick: number; read: boolean }
  | { op: "imapDelete"; pick: number }
  | { op: "graphDelete"; pick: number }
  | { op: "sync"; crashAfter: number | null; lagging: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("deposit" as const), seen: fc.boolean() }),
  fc.record({ op: fc.constant("imapSeen" as const), pick: fc.nat(), seen: fc.boolean() }),
  fc.record({ op: fc.constant("graphRead" as const), pick: fc.nat(), read: fc.boolean() }),
  fc.record({ op: fc.constant("imapDelete" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("graphDelete" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("sync" as const), crashAfter: fc.option(fc.nat({ max: 12 })), lagging: fc.boolean() }),
);

function sync(w: World, crashAfter: number | null, lagging = false) {
  const plan = planVoicemail(views(w, lagging), { massDeleteMaxShare: 1, massDeleteOverride: true });
  try { execute(w, plan.actions, { left: crashAfter ?? Number.POSITIVE_INFINITY }); } catch (e) { if (!(e instanceof Crash)) throw e; }
}

describe("planner + model executor, random edit histories", () => {
  it("converge, never duplicate, and a second run plans nothing", () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
      const w: World = { imap: new Map(), graph: [], links: new Map(), nextUid: 1, nextGraph: 1 };
      let keyNo = 0;
      for (const o of ops) {
        const imapKeys = [...w.imap.keys()];
        const g = w.graph;
        switch (o.op) {
          case "deposit": w.imap.set(`k${keyNo++}`, { uid: w.nextUid++, seen: o.seen }); break;
          case "imapSeen": if (imapKeys.length) w.imap.get(imapKeys[o.pick % imapKeys.length]!)!.seen = o.seen; break;
          case "graphRead": if (g.length) g[o.pick % g.length]!.isRead = o.read; break;
          case "imapDelete": if (imapKeys.length) w.imap.delete(imapKeys[o.pick % imapKeys.length]!); break;
          case "graphDelete": if (g.length) w.graph.splice(o.pick % g.length, 1); break;
          case "sync": sync(w, o.crashAfter, o.lagging); break;
        }
      }
      sync(w, null, true);
      sync(w, null);
      // Every voice message is in Exchange exactly once, with the same read state.
      for (const [key, item] of w.imap) {
        const copies = w.graph.filter((x) => x.syncKey === key);
        expect(copies).toHaveLength(1);
        expect(copies[0]!.isRead).toBe(item.seen);
      }
      // Nothing in Exchange without its voice original.
      for (const g of w.graph) expect(w.imap.has(g.syncKey)).toBe(true);
      expect(planVoicemail(views(w), limits).actions).toEqual([]);
    }), { numRuns: 500 });
  });

  it("keeps read sticky when both sides change between runs", () => {
    const w: World = { imap: new Map([["k", { uid: 1, seen: false }]]), graph: [], links: new Map(), nextUid: 2, nextGraph: 1 };
    sync(w, null);
    w.imap.get("k")!.seen = true; // heard on the phone
    w.graph[0]!.isRead = true;
    w.links.get("k")!.agreedSeen = false;
    w.imap.get("k")!.seen = true;
    sync(w, null);
    expect(w.imap.get("k")!.seen).toBe(true);
    expect(w.graph[0]!.isRead).toBe(true);
  });
});
