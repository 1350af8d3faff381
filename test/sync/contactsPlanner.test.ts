/**
 * The contacts decision table, case by case (DESIGN.md section 1: edit/edit -> latest wins and
 * the loser is kept; edit/delete -> edit wins; same content -> no conflict), and the guard.
 */
import { describe, expect, it } from "vitest";
import { planContact, planContacts, type ContactView } from "../../src/sync/contactsPlanner.js";

const link = { imapUid: 1, graphId: "g1", imapHash: "i0", graphHash: "m0" };
const imap = (hash: string, mapped: string, modified = "2026-01-01T00:00:00Z", uid = 1) => ({ ref: String(uid), hash, mapped, modified });
const graph = (hash: string, modified = "2026-01-01T00:00:00Z", id = "g1") => ({ ref: id, hash, mapped: hash, modified });
const kinds = (v: ContactView) => planContact(v).map((a) => ({ kind: a.kind, ...("conflictLoser" in a && a.conflictLoser ? { loser: a.conflictLoser } : {}) }));

describe("contacts planner", () => {
  const cases: Array<[string, ContactView, unknown[]]> = [
    ["new on the store", { syncKey: "k", imap: imap("i1", "m1") }, [{ kind: "createInGraph" }]],
    ["new in Exchange", { syncKey: "k", graph: graph("m1") }, [{ kind: "createInImap" }]],
    ["on both sides, no record, same content: linked, no conflict", { syncKey: "k", imap: imap("i1", "m1"), graph: graph("m1") }, [{ kind: "record" }]],
    ["on both sides, no record, different: the later one wins (store later)", { syncKey: "k", imap: imap("i1", "m1", "2026-02-01T00:00:00Z"), graph: graph("m2", "2026-01-01T00:00:00Z") }, [{ kind: "updateGraph", loser: "graph" }]],
    ["unchanged", { syncKey: "k", link, imap: imap("i0", "m0"), graph: graph("m0") }, []],
    ["edited on the store", { syncKey: "k", link, imap: imap("i1", "m1", undefined, 2), graph: graph("m0") }, [{ kind: "updateGraph" }]],
    ["edited in Exchange", { syncKey: "k", link, imap: imap("i0", "m0"), graph: graph("m1") }, [{ kind: "updateImap" }]],
    ["edited on both to the same content: no conflict", { syncKey: "k", link, imap: imap("i1", "m1", undefined, 2), graph: graph("m1") }, [{ kind: "updateGraph" }]],
    ["edit/edit, Exchange later: Exchange wins, the store's version is kept", { syncKey: "k", link, imap: imap("i1", "m1", "2026-01-02T00:00:00Z", 2), graph: graph("m2", "2026-01-03T00:00:00Z") }, [{ kind: "updateImap", loser: "imap" }]],
    ["edit/edit, store later: the store wins, Exchange's version is kept", { syncKey: "k", link, imap: imap("i1", "m1", "2026-01-04T00:00:00Z", 2), graph: graph("m2", "2026-01-03T00:00:00Z") }, [{ kind: "updateGraph", loser: "graph" }]],
    ["deleted on the store, unchanged in Exchange", { syncKey: "k", link, graph: graph("m0") }, [{ kind: "deleteInGraph" }]],
    ["deleted in Exchange, unchanged on the store", { syncKey: "k", link, imap: imap("i0", "m0") }, [{ kind: "deleteInImap" }]],
    ["deleted on the store, edited in Exchange: the edit wins", { syncKey: "k", link, graph: graph("m1") }, [{ kind: "createInImap" }]],
    ["deleted in Exchange, edited on the store: the edit wins", { syncKey: "k", link, imap: imap("i1", "m1", undefined, 2) }, [{ kind: "createInGraph" }]],
    ["deleted on both", { syncKey: "k", link }, [{ kind: "forget" }]],
    ["Exchange edit that changes nothing both sides hold: remembered", { syncKey: "k", link: { ...link, imapHash: "i0" }, imap: imap("i0", "m1"), graph: graph("m1") }, [{ kind: "record" }]],
    ["pending Graph create not found: resumed", { syncKey: "k", link: { imapUid: 1, imapHash: "i0", pendingGraphCreate: true }, imap: imap("i0", "m0") }, [{ kind: "createInGraph" }]],
    ["store UID moved (UIDVALIDITY), content equal: only recorded", { syncKey: "k", link, imap: imap("i0", "m0", undefined, 9), graph: graph("m0") }, [{ kind: "record" }]],
  ];
  it.each(cases)("%s", (_name, view, expected) => {
    expect(kinds(view)).toEqual(expected);
  });

  it("a pending create is resumed with a lookup first", () => {
    expect(planContact({ syncKey: "k", link: { imapUid: 1, imapHash: "i0", pendingGraphCreate: true }, imap: imap("i0", "m0") })).toEqual([{ kind: "createInGraph", syncKey: "k", imapUid: 1, resume: true }]);
  });

  it("holds deletes back when one side emptied, and lets them through with the override", () => {
    const views: ContactView[] = Array.from({ length: 10 }, (_, i) => ({ syncKey: `k${i}`, link: { ...link, imapUid: i, graphId: `g${i}` }, graph: graph("m0", undefined, `g${i}`) }));
    const plan = planContacts(views, { massDeleteMaxShare: 0.5 });
    expect(plan.massDelete).toMatchObject({ side: "graph", deletes: 10, emptied: true });
    expect(plan.actions.filter((a) => a.kind === "deleteInGraph")).toHaveLength(0);
    expect(planContacts(views, { massDeleteMaxShare: 0.5, massDeleteOverride: true }).actions.filter((a) => a.kind === "deleteInGraph")).toHaveLength(10);
    // Deleting the last contact (or the last two) is normal, not a wiped side.
    expect(planContacts(views.slice(0, 2), { massDeleteMaxShare: 0.5 }).massDelete).toBeUndefined();
    expect(planContacts(views.slice(0, 3), { massDeleteMaxShare: 0.5 }).massDelete).toMatchObject({ emptied: true });
    // Two of ten deleted is normal.
    const few = views.map((v, i) => (i < 2 ? v : { ...v, imap: imap("i0", "m0", undefined, i) }));
    expect(planContacts(few, { massDeleteMaxShare: 0.5 }).massDelete).toBeUndefined();
  });
});
