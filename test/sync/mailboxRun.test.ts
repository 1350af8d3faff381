/**
 * The run's lease guard (src/sync/mailboxRun.ts) with an in-memory lease store (the same
 * contract as the state store's leases: acquire, renew by owner, release).
 *
 * Break used: the guard is not closed when the run ends (`over = true` removed) -> "work left
 * running after its run ended cannot write" fails (assertHeld does not throw).
 */
import { describe, expect, it } from "vitest";
import { runUnderLease, type LeaseGuard, type LeaseHandle } from "../../src/sync/mailboxRun.js";
import { isConnectorError } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";

function leases(leaseSeconds: number) {
  let held: LeaseHandle | undefined;
  let renewals = 0;
  return {
    get renewals() { return renewals; },
    deps: {
      acquireLease: async (key: string) => {
        if (held && held.expiresAt > Date.now()) throw Object.assign(new Error("held"), { code: "LEASE_HELD" });
        held = { key, expiresAt: Date.now() + leaseSeconds * 1000 };
        return held;
      },
      renewLease: async (l: LeaseHandle) => { renewals++; held = { ...l, expiresAt: Date.now() + leaseSeconds * 1000 }; return held; },
      releaseLease: async () => { held = undefined; },
      requestRun: async () => undefined,
      takeRunRequest: async () => "none" as const,
      enqueueFollowUp: async () => undefined,
      leaseSeconds,
      log: createLogger({ level: "error" }),
    },
  };
}

describe("runUnderLease", () => {
  it("work left running after its run ended cannot write", async () => {
    const l = leases(30);
    let guard: LeaseGuard | undefined;
    // A run abandoned at its deadline: the run's promise rejects, its work goes on.
    await expect(runUnderLease("L-1", l.deps, async (g) => { guard = g; throw new Error("deadline"); })).rejects.toThrow("deadline");
    let refused: unknown;
    try { guard!.assertHeld(); } catch (e) { refused = e; }
    expect(isConnectorError(refused, "LEASE_LOST")).toBe(true);
  });

  it("a run longer than several lease periods keeps its lease", async () => {
    const l = leases(3); // renewed every second
    const writes = await runUnderLease("L-1", l.deps, async (g) => {
      let n = 0;
      for (const end = Date.now() + 7000; Date.now() < end; n++) { g.assertHeld(); await new Promise((r) => setTimeout(r, 50)); }
      return n;
    });
    expect(writes.status).toBe("ran");
    expect(l.renewals).toBeGreaterThanOrEqual(5);
  }, 20_000);
});
