/**
 * The poll's store check (src/app/storePoll.ts): when a folder's STATUS says it moved since a
 * kind's last run, and which folder each kind watches. The check through the real timer, login
 * and STATUS is test/e2e/pathsTimers.test.ts "poll alone ...".
 * Breaks seen red: folderMoved ignoring UIDVALIDITY -> "a new UIDVALIDITY ..."; ignoring a
 * missing HIGHESTMODSEQ -> "no HIGHESTMODSEQ ...".
 */
import { describe, expect, it } from "vitest";
import { checkMinute, folderMoved, watchedFolders } from "../../src/app/storePoll.js";
import { parseProfile } from "../../src/admin/profiles.js";

describe("poll's store check", () => {
  const saved = { uidValidity: 7, highestModseq: "120", uidNext: 31 };
  it("an unchanged HIGHESTMODSEQ under the same UIDVALIDITY is no change (RFC 7162 section 3.1.2.1)", () => {
    expect(folderMoved(saved, { ...saved })).toBe(false);
  });
  it("a flag change, an append or an expunge moves HIGHESTMODSEQ: a change", () => {
    expect(folderMoved(saved, { ...saved, highestModseq: "121" })).toBe(true);
    expect(folderMoved(saved, { ...saved, uidNext: 32 })).toBe(true);
  });
  it("a new UIDVALIDITY is a change, whatever the modseq says", () => {
    expect(folderMoved(saved, { ...saved, uidValidity: 8 })).toBe(true);
  });
  it("no HIGHESTMODSEQ (a server without CONDSTORE), no cursor, no folder: a change (the run decides)", () => {
    expect(folderMoved({ uidValidity: 7, uidNext: 31 }, { uidValidity: 7, uidNext: 31 })).toBe(true);
    expect(folderMoved(saved, { uidValidity: 7, uidNext: 31 })).toBe(true);
    expect(folderMoved(undefined, saved)).toBe(true);
    expect(folderMoved(saved, undefined)).toBe(true);
  });
  it("watches the folders of the kinds the profile syncs: INBOX for voicemail, the profile's contacts and e-mail folders", () => {
    const people = parseProfile({ id: "p", displayName: "p", contacts: { enabled: true, folder: "Contacts" }, emailToPhone: { enabled: true, storeFolder: "Mail" } });
    expect([...watchedFolders(people, ["voicemail", "contacts", "mail", "mirror"])]).toEqual([["voicemail", "INBOX"], ["contacts", "Contacts"], ["mail", "Mail"]]);
    const voice = parseProfile({ id: "v", displayName: "v" });
    expect([...watchedFolders(voice, ["voicemail", "contacts", "mail"])]).toEqual([["voicemail", "INBOX"]]);
  });
  it("checks each mailbox once per pollMinutes, the endpoint's mailboxes spread over the minutes", () => {
    // Break seen red: checkMinute always true -> every mailbox 5 times in 5 minutes.
    const links = Array.from({ length: 200 }, (_, i) => `L-${4000 + i}`);
    const t0 = Date.UTC(2026, 11, 1, 12, 0, 0);
    const perLink = new Map(links.map((l) => [l, 0]));
    const perMinute: number[] = [];
    for (let m = 0; m < 5; m++) {
      const checked = links.filter((l) => checkMinute(l, 5, t0 + m * 60_000 + 30_000));
      for (const l of checked) perLink.set(l, perLink.get(l)! + 1);
      perMinute.push(checked.length);
    }
    expect([...perLink.values()].every((n) => n === 1)).toBe(true);
    expect(Math.max(...perMinute)).toBeLessThan(200 / 5 * 1.6); // spread, not bunched in one minute
    expect(links.every((l) => checkMinute(l, 1, t0))).toBe(true);
  });
});
