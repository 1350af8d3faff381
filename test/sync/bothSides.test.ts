/** readBothSides: the two first reads of a run go out together; a failure is thrown only once both are done. */
import { describe, expect, it } from "vitest";
import { readBothSides } from "../../src/sync/bothSides.js";

/** A read that finishes when the test says so. */
function read<T>() {
  let finish!: (v: T) => void;
  let fail!: (e: unknown) => void;
  const started = { at: false };
  const make = () => { started.at = true; return new Promise<T>((res, rej) => { finish = res; fail = rej; }); };
  return { make, started, finish: (v: T) => finish(v), fail: (e: unknown) => fail(e) };
}

describe("readBothSides", () => {
  it("starts the Exchange read while the store read is still out, and answers both", async () => {
    const store = read<string>();
    const exchange = read<number>();
    const both = readBothSides(store.make, exchange.make);
    await new Promise((r) => setImmediate(r));
    expect(exchange.started.at).toBe(true); // the store read has not finished
    store.finish("imap");
    exchange.finish(7);
    expect(await both).toEqual(["imap", 7]);
  });

  it("throws the store's failure only once the Exchange read is over", async () => {
    const store = read<string>();
    const exchange = read<number>();
    let settled = false;
    const both = readBothSides(store.make, exchange.make).finally(() => { settled = true; });
    store.fail(new Error("store down"));
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false); // Exchange is still being read: nothing of the run may still be working when it fails
    exchange.finish(1);
    await expect(both).rejects.toThrow("store down");
  });
});
