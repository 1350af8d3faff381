import { describe, expect, it } from "vitest";
import { Semaphore } from "../../src/semaphore.js";

/** Starts `n` calls that each hold their slot until released; records how many run at once. */
function holders(s: Semaphore, n: number) {
  let now = 0;
  const peaks: number[] = [];
  const release: Array<() => void> = [];
  const started: number[] = [];
  const done = Array.from({ length: n }, (_, i) => s.run(async () => {
    now++;
    started.push(i);
    peaks.push(now);
    await new Promise<void>((r) => release.push(r));
    now--;
  }));
  return { peaks, release, started, done, get now() { return now; } };
}
const tick = () => new Promise((r) => setTimeout(r, 0));

describe("Semaphore", () => {
  it("never lets more than the limit run, and serves waiters in arrival order", async () => {
    const h = holders(new Semaphore(2), 5);
    await tick();
    expect(h.started).toEqual([0, 1]);
    while (h.release.length) { h.release.shift()!(); await tick(); }
    for (let i = 0; i < 5; i++) { while (h.release.length) h.release.shift()!(); await tick(); }
    await Promise.all(h.done);
    expect(h.started).toEqual([0, 1, 2, 3, 4]);
    expect(Math.max(...h.peaks)).toBe(2);
  });

  it("lets every waiter the grown limit allows go at once when a slot frees (credential gate: 1 until verified)", async () => {
    let limit = 1;
    const s = new Semaphore(() => limit);
    const h = holders(s, 4);
    await tick();
    expect(h.started).toEqual([0]);
    limit = 3; // the first login succeeded: the credential is verified
    h.release.shift()!();
    await tick();
    await tick();
    expect(h.started).toEqual([0, 1, 2, 3]);
    expect(h.now).toBe(3);
    while (h.release.length) h.release.shift()!();
    await Promise.all(h.done);
    expect(s.idle).toBe(true);
  });
});
