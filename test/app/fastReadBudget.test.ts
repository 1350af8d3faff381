/**
 * The fast read check's budget (src/app/schedule.ts pickFastLinks): a shard takes at most its
 * share of UMC_FAST_READ_MAX_PER_SECOND per tick, links checked longest ago first, so every due
 * link gets its turn. Break seen red: sorting left out (the same first links every tick) ->
 * "every due link gets its turn".
 */
import { describe, expect, it } from "vitest";
import { pickFastLinks } from "../../src/app/schedule.js";

describe("fast read budget", () => {
  it("takes at most the budget, never-checked and checked-longest-ago first", () => {
    const links = ["a", "b", "c", "d"].map((linkId) => ({ linkId }));
    const last = new Map([["a", 300], ["b", 100], ["d", 200]]);
    expect(pickFastLinks(links, last, 2).map((l) => l.linkId)).toEqual(["c", "b"]);
    expect(pickFastLinks(links, last, 10)).toHaveLength(4);
  });

  it("every due link gets its turn: four ticks of one cover four links once each", () => {
    const links = ["a", "b", "c", "d"].map((linkId) => ({ linkId }));
    const last = new Map<string, number>();
    const taken: string[] = [];
    for (let tick = 1; tick <= 4; tick++) {
      for (const l of pickFastLinks(links, last, 1)) { taken.push(l.linkId); last.set(l.linkId, tick); }
    }
    expect(taken.sort()).toEqual(["a", "b", "c", "d"]);
  });
});
