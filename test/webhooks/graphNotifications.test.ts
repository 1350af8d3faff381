import { describe, expect, it } from "vitest";
import { parseNotifications, subscriptionSubject } from "../../src/webhooks/graphNotifications.js";
import { makeClientState } from "../../src/webhooks/clientState.js";
import { isConnectorError } from "../../src/errors.js";

const SECRET = "a-webhook-secret-for-unit-tests-0123456789";
const item = (clientState: unknown, extra: Record<string, unknown> = {}) => ({ subscriptionId: "sub-1", clientState, changeType: "updated", resource: "Users/u/Messages/m", tenantId: "t", ...extra });

describe("parseNotifications", () => {
  it("keeps genuine items, drops forged and malformed ones of the same batch, and collapses duplicates", () => {
    const good = makeClientState(SECRET, subscriptionSubject("L-1", "voicemail"));
    const contacts = makeClientState(SECRET, subscriptionSubject("L-1", "contacts"));
    const body = JSON.stringify({ value: [item(good), item(good), item(contacts), item("forged"), item(null), item(good, { subscriptionId: 42 }), "junk", item(good, { lifecycleEvent: "missed" })] });
    const r = parseNotifications(body, SECRET);
    expect(r.forged).toBe(4);
    expect(r.work.map((w) => `${w.linkId} ${w.kind} ${w.reason}`).sort()).toEqual(["L-1 contacts graph-change", "L-1 voicemail graph-change", "L-1 voicemail graph-missed"]);
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
