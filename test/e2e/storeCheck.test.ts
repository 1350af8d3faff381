/**
 * The poll's store check (src/app/storePoll.ts checkStore) against a real Dovecot: a quiet
 * store asks for no run, a deposit asks for the voicemail run, and a store that cannot be
 * reached asks for the run once and is not tried again for the rest of the tick (the
 * `unreachable` set the shard shares), so one dead store does not cost a timeout per link.
 *
 * Breaks seen red (each restored): `unreachable` never filled (src/app/storePoll.ts) -> "expected
 * [] to deeply equal [ 'voice-1' ]"; the check ignoring `unreachable` -> the second link's check
 * asked the dead store again (asked: true).
 */
import { afterAll, describe, expect, it } from "vitest";
import { startWorld, ENDPOINT, SAFETY_NET_TIMERS } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { checkStore, nextCheckMinute } from "../../src/app/storePoll.js";

const w = await startWorld({ users: ["6101", "6102"], timers: false, disabledFunctions: SAFETY_NET_TIMERS });
afterAll(async () => { await w.stop(); });

describe("the poll's store check", () => {
  it("asks for a run only when the store moved; a store down is tried once per tick", async () => {
    const links = [];
    for (const mailbox of ["6101", "6102"]) {
      const { linkId } = await w.link(mailbox, `${mailbox}@contoso.test`);
      await expect.poll(async () => (await w.deps.state.getLink(linkId))?.lastSyncAt, { timeout: 15_000 }).toBeTruthy();
      links.push((await w.deps.state.getLink(linkId))!);
    }
    await w.queueDrained();
    const [a, b] = links as [typeof links[0], typeof links[0]];
    // The world's store pushes, so each mailbox is checked every 5 minutes (endpoint pollMinutes).
    const at = (l: typeof a) => nextCheckMinute(l.linkId, 5);
    expect((await checkStore(w.deps, a, ["voicemail"], new Set(), at(a))).run).toEqual([]);
    await w.dc.lda("6101", avayaVoiceMessage({ id: "check-1" }));
    expect((await checkStore(w.deps, a, ["voicemail"], new Set(), at(a))).run).toEqual(["voicemail"]);

    await w.dc.kill();
    try {
      const unreachable = new Set<string>();
      const first = await checkStore(w.deps, a, ["voicemail"], unreachable, at(a));
      // Unknown: the run decides (and records the store's answer).
      expect(first).toEqual({ run: ["voicemail"], asked: true });
      expect([...unreachable]).toEqual([ENDPOINT]);
      const second = await checkStore(w.deps, b, ["voicemail"], unreachable, at(b));
      expect(second).toEqual({ run: ["voicemail"], asked: false });
    } finally {
      await w.dc.restart();
    }
  }, 60_000);
});
