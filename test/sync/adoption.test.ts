import { describe, expect, it } from "vitest";
import { isForeignVoiceItem, matchAdoptions, type ForeignItem, type StoreCandidate } from "../../src/sync/adoption.js";

const t0 = Date.parse("2026-06-01T09:00:00Z");
const UM = "IPM.Note.Microsoft.Voicemail.UM.CA";
const store = (n: number, extra: Partial<StoreCandidate> = {}): StoreCandidate => ({ syncKey: `k${n}`, uid: n, callerNumber: "+4930123456", receivedAt: t0 + n * 3600_000, durationSeconds: 20 + n, ...extra });
const um = (id: string, extra: Partial<ForeignItem> = {}): ForeignItem => ({ id, isRead: false, messageClass: UM, callerNumber: "030 123456", ...extra });

describe("adoption matcher", () => {
  it("pairs by Message-ID where both have it, whatever class the other product used", () => {
    const r = matchAdoptions([store(1, { messageId: "<Abc@PBX>" })], [{ id: "g1", isRead: true, messageClass: "IPM.Note", internetMessageId: "<abc@pbx>" }]);
    expect(r).toEqual({ pairs: [{ syncKey: "k1", uid: 1, graphId: "g1", how: "message-id" }], ambiguous: [] });
  });

  it("pairs by caller (national or international form), time within the tolerance and duration", () => {
    const r = matchAdoptions([store(1), store(2)], [um("g2", { receivedAt: t0 + 2 * 3600_000 + 90_000, durationSeconds: 22 }), um("g1", { receivedAt: t0 + 3600_000 - 30_000, durationSeconds: 21 })]);
    expect(r.pairs.map((p) => [p.syncKey, p.graphId, p.how])).toEqual([["k1", "g1", "caller-time-duration"], ["k2", "g2", "caller-time-duration"]]);
  });

  it("never pairs on caller and time alone, outside the tolerance, or another caller", () => {
    expect(matchAdoptions([store(1)], [um("g", { receivedAt: t0 + 3600_000 })]).pairs).toEqual([]);
    expect(matchAdoptions([store(1)], [um("g", { receivedAt: t0 + 3600_000 + 600_000, durationSeconds: 21 })]).pairs).toEqual([]);
    expect(matchAdoptions([store(1)], [um("g", { receivedAt: t0 + 3600_000, durationSeconds: 21, callerNumber: "+4940999" })]).pairs).toEqual([]);
  });

  it("lists ambiguous matches instead of merging: two store messages for one item, one message for two items", () => {
    const twins = matchAdoptions([store(1), store(1, { syncKey: "k1b", uid: 11 })], [um("g1", { receivedAt: t0 + 3600_000, durationSeconds: 21 })]);
    expect(twins.pairs).toEqual([]);
    expect(twins.ambiguous.map((a) => [a.syncKey, a.candidates])).toEqual([["k1", ["g1"]], ["k1b", ["g1"]]]);
    const two = matchAdoptions([store(1)], [um("g1", { receivedAt: t0 + 3600_000, durationSeconds: 21 }), um("g2", { receivedAt: t0 + 3600_000 + 5_000, durationSeconds: 21 })]);
    expect(two.pairs).toEqual([]);
    expect(two.ambiguous).toEqual([expect.objectContaining({ syncKey: "k1", candidates: ["g1", "g2"] })]);
    const sameMid = matchAdoptions([store(1, { messageId: "<x@p>" })], [um("g1", { internetMessageId: "<x@p>" }), um("g2", { internetMessageId: "<x@p>" })]);
    expect(sameMid.pairs).toEqual([]);
    expect(sameMid.ambiguous).toHaveLength(1);
  });

  it("knows other products' voice messages by class or duration, and a missed-call notice is none", () => {
    expect(isForeignVoiceItem({ messageClass: "IPM.Note.Microsoft.Voicemail.UM" })).toBe(true);
    expect(isForeignVoiceItem({ messageClass: "IPM.Note.rpmsg.Microsoft.Voicemail.UM.CA" })).toBe(true);
    expect(isForeignVoiceItem({ messageClass: "IPM.Note.Microsoft.Missed.Voice", durationSeconds: 0 })).toBe(false);
    expect(isForeignVoiceItem({ messageClass: "IPM.Note" })).toBe(false);
    expect(isForeignVoiceItem({ messageClass: "IPM.Note", durationSeconds: 12 })).toBe(true);
  });
});
