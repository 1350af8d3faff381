import { describe, expect, it } from "vitest";
import { mirrorIdentity, normalFlags, parseIdentity, planMirror, retryDelayMs, type MirrorMessage, type MirrorPair } from "../../src/sync/mirrorPlanner.js";

const now = new Date("2026-06-01T09:00:00Z");
const limits = { massDeleteMaxShare: 0.5 };
const id = (n: number) => mirrorIdentity({ messageId: `<m${n}@pbx.example>`, internalDate: new Date(Date.parse("2026-05-01T08:00:00Z") + n * 60_000), size: 1000 + n });
const msg = (n: number, uid = n, flags: string[] = []): MirrorMessage => ({ uid, identity: id(n), flags, size: 1000 + n });
const pair = (n: number, srcUid = n, tgtUid = 100 + n, flags: string[] = []): MirrorPair => ({ identity: id(n), srcUid, tgtUid, flags });

describe("mirror identity", () => {
  it("is Message-ID, INTERNALDATE to the second in UTC, and size; parses back", () => {
    const a = mirrorIdentity({ messageId: "<a|b@x>", internalDate: "2026-05-01T10:00:00+02:00", size: 55_000 });
    expect(a).toBe("<a|b@x>|2026-05-01T08:00:00Z|55000");
    expect(parseIdentity(a)).toEqual({ messageId: "<a|b@x>", internalDate: "2026-05-01T08:00:00Z", size: 55_000 });
    expect(parseIdentity(mirrorIdentity({ internalDate: "2026-05-01T08:00:00Z", size: 7 }))).toEqual({ messageId: undefined, internalDate: "2026-05-01T08:00:00Z", size: 7 });
  });
  it("drops \\Recent from flags, keeps keywords", () => {
    expect(normalFlags(["\\Seen", "\\Recent", "$Urgent", "\\Seen"])).toEqual(["$Urgent", "\\Seen"]);
  });
});

describe("mirror planner, full", () => {
  it("copies what the backup lacks, with flags and date; nothing for what it has", () => {
    const p = planMirror({ mode: "full", source: [msg(2, 2, ["\\Seen"]), msg(1)], target: [msg(1, 101)], pairs: [pair(1)], now, limits });
    expect(p.append).toEqual([{ identity: id(2), srcUid: 2, flags: ["\\Seen"], internalDate: undefined, size: 1002 }]);
    expect(p.setFlags).toEqual([]);
    expect(p.putPairs).toEqual([]);
  });

  it("after a UIDVALIDITY change on either side re-matches by identity and copies nothing", () => {
    // Production renumbered (uids 11, 12), the backup too (201, 202); the pairs hold the old ones.
    const p = planMirror({ mode: "full", source: [msg(1, 11), msg(2, 12, ["\\Flagged"])], target: [msg(1, 201), msg(2, 202, ["\\Flagged"])], pairs: [pair(1), pair(2, 2, 102, ["\\Flagged"])], now, limits });
    expect(p.append).toEqual([]);
    expect(p.putPairs).toEqual([{ identity: id(1), srcUid: 11, tgtUid: 201, flags: [] }, { identity: id(2), srcUid: 12, tgtUid: 202, flags: ["\\Flagged"] }]);
  });

  it("fixes flags that differ on the backup (\\Seen, \\Flagged, \\Deleted, keywords)", () => {
    const p = planMirror({ mode: "full", source: [msg(1, 1, ["\\Seen", "\\Flagged", "\\Deleted", "$Urgent"])], target: [msg(1, 101, ["\\Seen"])], pairs: [pair(1, 1, 101, ["\\Seen"])], now, limits });
    expect(p.setFlags).toEqual([{ identity: id(1), tgtUid: 101, flags: ["$Urgent", "\\Deleted", "\\Flagged", "\\Seen"], srcUid: 1 }]);
  });

  it("removes on the backup only what the mirror copied; the backup's own messages are extra", () => {
    const own = { uid: 300, identity: "<own@backup>|2026-05-01T00:00:00Z|9", flags: [] };
    const p = planMirror({ mode: "full", source: [msg(1), msg(2), msg(3), msg(4), msg(5)], target: [1, 2, 3, 4, 5, 6].map((n) => msg(n, 100 + n)).concat(own), pairs: [1, 2, 3, 4, 5, 6].map((n) => pair(n)), now, limits });
    expect(p.expunge).toEqual([{ identity: id(6), tgtUid: 106 }]);
    expect(p.extra).toEqual([own]);
  });

  it("a production wipe does not empty the backup (mass-delete guard)", () => {
    const p = planMirror({ mode: "full", source: [], target: [1, 2, 3, 4, 5, 6].map((n) => msg(n, 100 + n)), pairs: [1, 2, 3, 4, 5, 6].map((n) => pair(n)), now, limits });
    expect(p.expunge).toEqual([]);
    expect(p.massDelete).toMatchObject({ pattern: "wipe", refused: true, deletes: 6, known: 6 });
  });

  it("a copy the backup refused waits for its retry, then is tried again", () => {
    const failed = { code: "OVERQUOTA", reason: "Quota exceeded", attempts: 2, retryAt: new Date(now.getTime() + 60_000).toISOString() };
    const waiting = planMirror({ mode: "full", source: [msg(1)], target: [], pairs: [{ identity: id(1), srcUid: 1, flags: [], failed }], now, limits });
    expect(waiting.append).toEqual([]);
    expect(waiting.waiting).toBe(1);
    const due = planMirror({ mode: "full", source: [msg(1)], target: [], pairs: [{ identity: id(1), srcUid: 1, flags: [], failed }], now: new Date(now.getTime() + 61_000), limits });
    expect(due.append).toEqual([expect.objectContaining({ identity: id(1), retry: failed })]);
    expect(retryDelayMs(1)).toBe(60_000);
    expect(retryDelayMs(3)).toBe(240_000);
    expect(retryDelayMs(30)).toBe(6 * 3600_000);
  });
});

describe("mirror planner, incremental", () => {
  it("copies new messages, sets changed flags, expunges vanished ones", () => {
    const pairs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => pair(n));
    const p = planMirror({ mode: "incremental", source: [msg(11), msg(2, 2, ["\\Seen"])], vanished: [3, 99], pairs, now, limits });
    expect(p.append.map((a) => a.srcUid)).toEqual([11]);
    expect(p.setFlags).toEqual([{ identity: id(2), tgtUid: 102, flags: ["\\Seen"], srcUid: 2 }]);
    expect(p.expunge).toEqual([{ identity: id(3), tgtUid: 103 }]);
  });

  it("a message already paired with the same flags (a run repeated after a crash) costs nothing", () => {
    const p = planMirror({ mode: "incremental", source: [msg(1, 1, ["\\Seen"])], vanished: [], pairs: [pair(1, 1, 101, ["\\Seen"])], now, limits });
    expect(p).toMatchObject({ append: [], setFlags: [], expunge: [], putPairs: [] });
  });

  it("holds back a burst of expunges above the allowed share", () => {
    const pairs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => pair(n));
    const p = planMirror({ mode: "incremental", source: [], vanished: [1, 2, 3, 4, 5, 6], pairs, now, limits });
    expect(p.expunge).toEqual([]);
    expect(p.massDelete).toMatchObject({ pattern: "share", refused: true, deletes: 6 });
  });

  it("retries a refused copy when due even though production did not change it", () => {
    const failed = { code: "LIMIT", reason: "too large", attempts: 1, retryAt: new Date(now.getTime() - 1).toISOString() };
    const p = planMirror({ mode: "incremental", source: [], vanished: [], pairs: [{ identity: id(4), srcUid: 4, flags: ["\\Seen"], failed }], now, limits });
    expect(p.append).toEqual([{ identity: id(4), srcUid: 4, flags: ["\\Seen"], internalDate: parseIdentity(id(4)).internalDate, size: 1004, retry: failed }]);
  });
});
