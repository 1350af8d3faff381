import { describe, expect, it } from "vitest";
import { parseNotifications, subscriptionSubject } from "../../src/webhooks/graphNotifications.js";
import { makeClientState, newNonce, verifyClientState } from "../../src/webhooks/clientState.js";
import { isConnectorError } from "../../src/errors.js";

const SECRET = "a-webhook-secret-for-unit-tests-0123456789";
const item = (clientState: unknown, extra: Record<string, unknown> = {}) => ({ subscriptionId: "sub-1", clientState, changeType: "updated", resource: "Users/u/Messages/m", tenantId: "t", ...extra });

describe("parseNotifications", () => {
  it("keeps genuine items, drops forged and malformed ones of the same batch, and collapses duplicates", () => {
    const good = makeClientState(SECRET, subscriptionSubject("L-1", "voicemail"), "t", newNonce());
    const contacts = makeClientState(SECRET, subscriptionSubject("L-1", "contacts"), "t", newNonce());
    const body = JSON.stringify({ value: [item(good), item(good), item(contacts), item("forged"), item(null), item(good, { subscriptionId: 42 }), "junk", item(good, { lifecycleEvent: "missed" }), item(good, { tenantId: "other" }), item(good, { lifecycleEvent: "someNewEvent" })] });
    const r = parseNotifications(body, SECRET);
    expect(r.forged).toBe(5);
    expect(r.work.map((w) => `${w.linkId} ${w.kind} ${w.reason}`).sort()).toEqual(["L-1 contacts graph-change", "L-1 voicemail graph-change", "L-1 voicemail graph-lifecycle", "L-1 voicemail graph-missed"]);
    expect(r.work.find((w) => w.reason === "graph-lifecycle")?.lifecycleEvent).toBe("someNewEvent");
  });

  it("binds clientState to the tenant and a per-subscription nonce; the legacy form carries no nonce", () => {
    const nonce = newNonce();
    const cs = makeClientState(SECRET, "L-1|contacts", "tenant-a", nonce);
    expect(cs.length).toBeLessThanOrEqual(128);
    expect(verifyClientState(SECRET, cs, "tenant-a")).toEqual({ subject: "L-1|contacts", nonce });
    expect(verifyClientState(SECRET, cs, "tenant-b")).toBeUndefined();
    expect(verifyClientState("another-secret-0123456789-0123456789", cs, "tenant-a")).toBeUndefined();
    expect(verifyClientState(SECRET, cs.replace(nonce, newNonce()), "tenant-a")).toBeUndefined();
    expect(makeClientState(SECRET, "L-1", "t", newNonce())).not.toBe(makeClientState(SECRET, "L-1", "t", newNonce()));
  });

  it("refuses a body that is not a notification collection with a typed error", () => {
    for (const body of ["", "nope", "[]", "{\"value\": 1}", JSON.stringify({ value: new Array(1001).fill({}) })]) {
      let err: unknown;
      try { parseNotifications(body, SECRET); } catch (e) { err = e; }
      expect(isConnectorError(err, "BAD_REQUEST"), body.slice(0, 20)).toBe(true);
    }
    expect(() => parseNotifications("x".repeat(1_000_001), SECRET)).toThrow(/too large/);
  });
});
