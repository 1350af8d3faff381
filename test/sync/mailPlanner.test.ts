import { describe, expect, it } from "vitest";
import { DEFAULT_PROFILE, effectiveProfile } from "../../src/admin/profiles.js";
import { decideMailCopy, mailSyncKey, planMail, type MailRecord, type MailRules, type MailSeen } from "../../src/sync/mailPlanner.js";

const NOW = Date.parse("2026-11-30T12:00:00Z");
const rules = (o: Record<string, unknown> = {}, extra: Partial<MailRules> = {}): MailRules =>
  ({ ...effectiveProfile(DEFAULT_PROFILE, { emailToPhone: { enabled: true, ...o } }).emailToPhone, loopPreventionDomain: "voice.contoso.com", userAddress: "alex@contoso.com", ...extra });
const mail = (id: string, o: Partial<MailSeen> = {}): MailSeen => ({ id, isRead: false, subject: id, receivedDateTime: "2026-11-30T10:00:00Z", from: { name: "Ann", address: "ann@contoso.com" }, toRecipients: [{ address: "alex@contoso.com" }], body: { contentType: "text", content: "hi" }, ...o });
const rec = (id: string, uid: number, o: Partial<MailRecord> = {}): MailRecord => ({ syncKey: mailSyncKey(id), graphId: id, imapUid: uid, agreedSeen: false, receivedAt: "2026-11-29T10:00:00Z", ...o });
const none = { full: false, changed: [], vanished: [] };

describe("mail planner", () => {
  it("never copies umconnect's own items, voice and fax messages, invites or the voice domain's mail", () => {
    const r = rules();
    expect(decideMailCopy(mail("a"), r, NOW)).toEqual({ copy: true });
    expect(decideMailCopy(mail("a", { syncKey: "v123" }), r, NOW)).toMatchObject({ copy: false, code: "LOOP_PREVENTED" });
    expect(decideMailCopy(mail("a", { messageClass: "IPM.Note.Microsoft.Voicemail.UM.CA" }), r, NOW)).toMatchObject({ copy: false, code: "LOOP_PREVENTED" });
    expect(decideMailCopy(mail("a", { messageClass: "IPM.Schedule.Meeting.Request" }), r, NOW)).toMatchObject({ copy: false, message: "a calendar invite or reply" });
    expect(decideMailCopy(mail("a", { odataType: "#microsoft.graph.eventMessageRequest" }), r, NOW)).toMatchObject({ copy: false, message: "a calendar invite or reply" });
    expect(decideMailCopy(mail("a", { from: { address: "4711@Voice.Contoso.com" } }), r, NOW)).toMatchObject({ copy: false, code: "LOOP_PREVENTED" });
    expect(decideMailCopy(mail("a", { ccRecipients: [{ address: "vm@voice.contoso.com" }] }), r, NOW)).toMatchObject({ copy: false, code: "LOOP_PREVENTED" });
  });

  it("applies the profile's filters: unread only, age, size, internal senders", () => {
    expect(decideMailCopy(mail("a", { isRead: true }), rules(), NOW)).toMatchObject({ copy: false, message: "already read" });
    expect(decideMailCopy(mail("a", { isRead: true }), rules({ filters: { unreadOnly: false } }), NOW)).toEqual({ copy: true });
    expect(decideMailCopy(mail("a", { receivedDateTime: "2026-10-01T00:00:00Z" }), rules(), NOW)).toMatchObject({ copy: false, message: "older than 30 days" });
    expect(decideMailCopy(mail("a", { size: 20 * 1024 * 1024 }), rules(), NOW)).toMatchObject({ copy: false, message: /larger than/ });
    expect(decideMailCopy(mail("a", { from: { address: "x@fabrikam.com" } }), rules({ filters: { internalOnly: true } }), NOW)).toMatchObject({ copy: false, message: "not from an internal sender" });
    expect(decideMailCopy(mail("a"), rules({ filters: { internalOnly: true } }), NOW)).toEqual({ copy: true });
    expect(decideMailCopy(mail("a"), rules({ filters: { internalOnly: true, internalDomains: ["fabrikam.com"] } }), NOW)).toMatchObject({ copy: false });
  });

  it("keeps read state in step both ways; read wins when both sides changed", () => {
    const records = [rec("a", 1), rec("b", 2), rec("c", 3)];
    const plan = planMail({ records, graph: { upserted: [mail("a", { isRead: true }), mail("c", { isRead: false })], removed: [] }, store: { full: false, changed: [{ uid: 2, seen: true }, { uid: 3, seen: true }], vanished: [] }, rules: rules(), now: NOW });
    expect(plan.actions).toEqual(expect.arrayContaining([
      { kind: "setStoreSeen", syncKey: mailSyncKey("a"), uid: 1, seen: true },
      { kind: "setGraphRead", syncKey: mailSyncKey("b"), graphId: "b", read: true },
      { kind: "setGraphRead", syncKey: mailSyncKey("c"), graphId: "c", read: true },
    ]));
    expect(plan.actions).toHaveLength(3);
  });

  it("deletes per profile: an Outlook delete removes the copy; a store delete removes the mail only with deletes both", () => {
    const records = [rec("a", 1), rec("b", 2)];
    const input = { records, graph: { upserted: [], removed: ["a"] }, store: { full: false, changed: [], vanished: [2] }, now: NOW };
    expect(planMail({ ...input, rules: rules() }).actions).toEqual([
      { kind: "removeFromStore", syncKey: mailSyncKey("a"), uid: 1, reason: "outlook-delete" },
      { kind: "markStoreGone", syncKey: mailSyncKey("b") },
    ]);
    expect(planMail({ ...input, rules: rules({ deletes: "both" }) }).actions).toContainEqual({ kind: "deleteInExchange", syncKey: mailSyncKey("b"), graphId: "b" });
    // A copy gone from the store on purpose is never copied again.
    expect(planMail({ records: [rec("b", 2, { imapUid: undefined, gone: "store" })], graph: { upserted: [mail("b", { isRead: true })], removed: [] }, store: none, rules: rules(), now: NOW }).actions).toEqual([]);
  });

  it("keeps the store folder under its cap by removing the oldest copies from the store only", () => {
    const records = Array.from({ length: 10 }, (_, i) => rec(`old${i}`, i + 1, { receivedAt: `2026-11-2${i}T00:00:00Z` }));
    const plan = planMail({ records, graph: { upserted: [mail("new1"), mail("new2")], removed: [] }, store: none, rules: rules({ storeFolderCap: 10 }), now: NOW });
    expect(plan.actions.filter((a) => a.kind === "copy").map((a) => (a as { graphId: string }).graphId).sort()).toEqual(["new1", "new2"]);
    expect(plan.actions.filter((a) => a.kind === "removeFromStore")).toEqual([
      { kind: "removeFromStore", syncKey: mailSyncKey("old1"), uid: 2, reason: "cap" },
      { kind: "removeFromStore", syncKey: mailSyncKey("old0"), uid: 1, reason: "cap" },
    ]);
    expect(plan.actions.some((a) => a.kind === "deleteInExchange")).toBe(false);
    // A new message older than every kept copy is recorded as capped, not copied.
    const late = planMail({ records, graph: { upserted: [mail("ancient", { receivedDateTime: "2026-11-01T00:00:00Z" })], removed: [] }, store: none, rules: rules({ storeFolderCap: 10 }), now: NOW });
    expect(late.actions).toEqual([{ kind: "recordCapped", syncKey: mailSyncKey("ancient"), graphId: "ancient", seen: false, receivedAt: "2026-11-01T00:00:00.000Z" }]);
  });

  it("resumes a copy left pending by a crash", () => {
    const plan = planMail({ records: [rec("a", 0, { imapUid: undefined, pendingAppend: true })], graph: { upserted: [], removed: [] }, store: none, rules: rules(), now: NOW });
    expect(plan.actions).toEqual([expect.objectContaining({ kind: "copy", graphId: "a", resume: true })]);
  });
});
