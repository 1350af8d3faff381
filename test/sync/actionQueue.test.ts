/**
 * The executor loop the voicemail, contacts and calendar syncs share (src/sync/actionQueue.ts).
 * Breaks seen red: timeUp ignored -> "stops taking actions ..." and "every run makes progress ...";
 * a transient error offered to itemFailed as an item problem -> "an item's own problem ...";
 * the light-only workers taking any action -> "light actions run more at once ..." (heavy 8 at
 * once); no light-only workers -> same test (light 2 at once); workers that find the lines
 * empty returning instead of waiting for `more` -> "actions planned while ..." (4 never run);
 * a rejected `more` ignored -> same test (resolves instead of rejecting).
 */
import { describe, expect, it } from "vitest";
import { ConnectorError } from "../../src/errors.js";
import { runActionQueue } from "../../src/sync/actionQueue.js";

const tick = () => new Promise((r) => setTimeout(r, 1));

describe("runActionQueue", () => {
  it("stops taking actions once time is up, lets those in flight settle and returns how many are left", async () => {
    const done: number[] = [];
    let up = false;
    const r = await runActionQueue([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], {
      parallel: 2, timeUp: () => up, context: () => ({}), itemFailed: async () => false,
      apply: async (n) => { await tick(); done.push(n); if (n === 3) up = true; },
    });
    // 3 sets the time up while 4 is in flight: both finish, nothing after them starts.
    expect(done.sort((a, b) => a - b)).toEqual([1, 2, 3, 4]);
    expect(r).toEqual({ taken: 4, left: 6 });
  });

  it("every run makes progress: with its time up from the start it still takes a first round of `parallel`", async () => {
    const done: number[] = [];
    const r = await runActionQueue([1, 2, 3, 4, 5], { parallel: 3, timeUp: () => true, context: () => ({}), itemFailed: async () => false, apply: async (n) => { done.push(n); } });
    expect(done).toEqual([1, 2, 3]);
    expect(r.left).toBe(2);
  });

  it("an item's own problem is recorded and the run goes on; any other failure stops it after those in flight", async () => {
    const recorded: number[] = [];
    const done: number[] = [];
    const r = await runActionQueue([1, 2, 3], {
      parallel: 1, context: (n) => ({ item: n }),
      apply: async (n) => { if (n === 2) throw new ConnectorError("MIME_MALFORMED", "bad"); done.push(n); },
      itemFailed: async (n, err) => { expect(err.code).toBe("MIME_MALFORMED"); recorded.push(n); return true; },
    });
    expect({ done, recorded, r }).toEqual({ done: [1, 3], recorded: [2], r: { taken: 3, left: 0 } });

    const started: number[] = [];
    await expect(runActionQueue([1, 2, 3, 4], {
      parallel: 2, context: (n) => ({ item: n }), itemFailed: async () => true,
      apply: async (n) => { started.push(n); await tick(); if (n === 1) throw new ConnectorError("GRAPH_UNAVAILABLE", "503", { transient: true }); },
    })).rejects.toMatchObject({ code: "GRAPH_UNAVAILABLE" });
    // A transient failure is never an item's: 2 was in flight and settled, 3 and 4 never started.
    expect(started).toEqual([1, 2]);
  });

  it("a failure while recording an item's problem stops the run with that failure", async () => {
    await expect(runActionQueue([1, 2], {
      parallel: 1, context: () => ({}),
      apply: async () => { throw new ConnectorError("MIME_MALFORMED", "bad"); },
      itemFailed: async () => { throw new ConnectorError("STATE_UNAVAILABLE", "table down", { transient: true }); },
    })).rejects.toMatchObject({ code: "STATE_UNAVAILABLE" });
  });

  it("light actions run more at once than `parallel`; heavy ones never do", async () => {
    // 40 actions: every 2nd heavy. Each waits for a tick so many are in flight together.
    const actions = Array.from({ length: 40 }, (_, i) => ({ i, heavy: i % 2 === 0 }));
    let heavyNow = 0, heavyMax = 0, lightNow = 0, lightMax = 0;
    const r = await runActionQueue(actions, {
      parallel: 4, light: { is: (a) => !a.heavy, parallel: 16 }, context: () => ({}), itemFailed: async () => false,
      apply: async (a) => {
        if (a.heavy) heavyMax = Math.max(heavyMax, ++heavyNow); else lightMax = Math.max(lightMax, ++lightNow);
        await tick(); await tick();
        if (a.heavy) heavyNow--; else lightNow--;
      },
    });
    expect(r).toEqual({ taken: 40, left: 0 });
    expect(heavyMax).toBeLessThanOrEqual(4);
    expect(lightMax).toBeGreaterThan(4);
    expect(lightMax).toBeLessThanOrEqual(16);
  });

  it("actions planned while the first ones run are taken when they come; a failure to plan them stops the run", async () => {
    const done: number[] = [];
    let release!: (xs: number[]) => void;
    const more = new Promise<number[]>((r) => { release = r; });
    const run = runActionQueue([1, 2], { parallel: 2, more, context: () => ({}), itemFailed: async () => false, apply: async (n) => { done.push(n); if (n === 2) setTimeout(() => release([3, 4]), 20); } });
    expect(await run).toEqual({ taken: 4, left: 0 });
    expect(done).toEqual([1, 2, 3, 4]);

    // Nothing planned first: the workers wait for what comes.
    expect(await runActionQueue<number>([], { parallel: 2, more: Promise.resolve([5]), context: () => ({}), itemFailed: async () => false, apply: async (n) => { done.push(n); } })).toEqual({ taken: 1, left: 0 });
    expect(done).toEqual([1, 2, 3, 4, 5]);

    const failed = runActionQueue([1], { parallel: 1, more: Promise.reject(new ConnectorError("IMAP_UNAVAILABLE", "store gone", { transient: true })), context: () => ({}), itemFailed: async () => false, apply: async () => { await tick(); } });
    await expect(failed).rejects.toMatchObject({ code: "IMAP_UNAVAILABLE" });
  });
});
