import { describe, expect, it } from "vitest";
import { calendarWindow, inWindow, planCalendar } from "../../src/sync/calendarPlanner.js";
import { countsForLocation, locationAt, policyShowAs } from "../../src/sync/ucLocation.js";
import { parseProfile } from "../../src/admin/profiles.js";
import type { CalendarRecord } from "../../src/sync/calendarSync.js";

const d = (key: string, hash = "h") => [key, { syncKey: key, hash }] as const;

describe("calendar window", () => {
  it("covers whole UTC days from pastDays back to futureDays ahead", () => {
    expect(calendarWindow(new Date("2026-11-24T15:30:00Z"), 7, 60)).toEqual({ start: "2026-11-17T00:00:00.000Z", end: "2027-01-24T00:00:00.000Z" });
  });
  it("keeps occurrences overlapping the window, timed and all-day", () => {
    const w = { start: "2026-11-24T00:00:00.000Z", end: "2026-11-25T00:00:00.000Z" };
    expect(inWindow({ start: "2026-11-23T23:30:00.000Z", end: "2026-11-24T00:30:00.000Z", isAllDay: false }, w)).toBe(true);
    expect(inWindow({ start: "2026-11-23T22:00:00.000Z", end: "2026-11-24T00:00:00.000Z", isAllDay: false }, w)).toBe(false);
    expect(inWindow({ start: "2026-11-24", end: "2026-11-25", isAllDay: true }, w)).toBe(true);
    expect(inWindow({ start: "2026-11-25", end: "2026-11-26", isAllDay: true }, w)).toBe(false);
  });
});

describe("calendar planner", () => {
  it("writes new, replaces changed, removes gone, leaves unchanged alone", () => {
    const records = new Map([["a", { syncKey: "a", imapUid: 1, hash: "h" }], ["b", { syncKey: "b", imapUid: 2, hash: "old" }], ["c", { syncKey: "c", imapUid: 3, hash: "h" }]]);
    expect(planCalendar(new Map([d("a"), d("b"), d("n")]), records)).toEqual([
      { kind: "write", syncKey: "b", replaceUid: 2 }, { kind: "write", syncKey: "n" }, { kind: "remove", syncKey: "c", imapUid: 3 },
    ]);
  });
  it("with a store listing: rewrites items deleted on the store, removes strays and duplicates, settles pending writes", () => {
    const records = new Map([
      ["a", { syncKey: "a", imapUid: 1, hash: "h" }], // fine
      ["b", { syncKey: "b", imapUid: 2, hash: "h" }], // deleted on the store
      ["p", { syncKey: "p", imapUid: undefined, hash: "h", pending: true }], // crashed after APPEND (uid 7)
    ]);
    const store = new Map<number, string | undefined>([[1, "a"], [5, "a"], [7, "p"], [9, undefined], [11, "zombie"]]);
    const plan = planCalendar(new Map([d("a"), d("b"), d("p")]), records, store);
    expect(plan).toEqual(expect.arrayContaining([
      { kind: "write", syncKey: "b", replaceUid: undefined }, { kind: "write", syncKey: "p", replaceUid: undefined },
      { kind: "removeStray", imapUid: 5 }, { kind: "removeStray", imapUid: 7 }, { kind: "removeStray", imapUid: 11 },
    ]));
    expect(plan).toHaveLength(5); // uid 9 has no key: not ours, left alone; "a" at uid 1 untouched
    // A previous product's item (no key) goes only when the profile says so.
    const removing = planCalendar(new Map([d("a"), d("b"), d("p")]), records, store, "remove");
    expect(removing).toEqual(expect.arrayContaining([{ kind: "removeStray", imapUid: 9 }]));
    expect(removing).toHaveLength(6);
  });
});

describe("UC location", () => {
  const rec = (start: string, end: string, showAs: CalendarRecord["showAs"] = "busy", isAllDay = false): CalendarRecord => ({ syncKey: start, imapUid: 1, hash: "h", start, end, showAs, isAllDay });
  const records = [
    rec("2026-11-24T09:00:00.000Z", "2026-11-24T10:00:00.000Z"),
    rec("2026-11-24T09:30:00.000Z", "2026-11-24T11:00:00.000Z", "oof"),
    rec("2026-11-24T12:00:00.000Z", "2026-11-24T13:00:00.000Z", "free"),
    rec("2026-11-24", "2026-11-25", "busy", true),
    rec("2026-11-24T14:00:00.000Z", "2026-11-24T15:00:00.000Z", "tentative"),
    rec("2026-11-24T16:00:00.000Z", "2026-11-24T17:00:00.000Z"),
  ];
  it.each([
    ["before everything", "2026-11-24T08:00:00Z", null, "2026-11-24T09:00:00.000Z"],
    ["in a busy meeting that runs into out-of-office: one block", "2026-11-24T09:10:00Z", "Meeting", "2026-11-24T11:00:00.000Z"],
    ["in overlapping busy and out-of-office", "2026-11-24T10:30:00Z", "Meeting", "2026-11-24T11:00:00.000Z"],
    ["free, all-day and tentative do not count", "2026-11-24T12:30:00Z", null, "2026-11-24T16:00:00.000Z"],
    ["after the last", "2026-11-24T18:00:00Z", null, undefined],
  ])("%s", (_n, now, value, next) => {
    const s = locationAt(records, new Date(now), { text: "Meeting", showAs: ["busy", "oof"], allDayOof: false });
    expect(s.value).toBe(value);
    expect(s.nextChange?.toISOString()).toBe(next);
  });
});

describe("UC location policy (per profile)", () => {
  const rec = (showAs: string, isAllDay = false): CalendarRecord => ({ syncKey: showAs, imapUid: 1, hash: "h", start: isAllDay ? "2026-11-24" : "2026-11-24T09:00:00.000Z", end: isAllDay ? "2026-11-25" : "2026-11-24T10:00:00.000Z", showAs, isAllDay });
  const defaults = parseProfile({ id: "p", displayName: "P", calendar: { enabled: true, changeLocation: { enabled: true } } }).calendar.changeLocation;

  it("by default counts busy, out of office, tentative and unknown, and all-day out of office", () => {
    // Break seen red: the default without "tentative" -> the tentative meeting does not count.
    expect(["busy", "oof", "tentative", "unknown", "workingElsewhere", "free"].map((s) => countsForLocation(rec(s), defaults))).toEqual([true, true, true, true, false, false]);
    expect(countsForLocation(rec("oof", true), defaults)).toBe(true);
    expect(countsForLocation(rec("busy", true), defaults)).toBe(false);
  });
  it("reads a show-as value Graph adds later as unknown, the way the store item shows it (busy)", () => {
    expect(policyShowAs("somethingNew")).toBe("unknown");
    expect(countsForLocation(rec("somethingNew"), { showAs: ["unknown"], allDayOof: false })).toBe(true);
    expect(countsForLocation(rec("somethingNew"), { showAs: ["busy"], allDayOof: false })).toBe(false);
  });
  it("follows the profile: working elsewhere on, all-day out of office off", () => {
    const p = { showAs: ["workingElsewhere"] as const, allDayOof: false };
    expect(countsForLocation(rec("workingElsewhere"), p)).toBe(true);
    expect(countsForLocation(rec("busy"), p)).toBe(false);
    expect(countsForLocation(rec("oof", true), p)).toBe(false);
  });
  it("an all-day out-of-office day holds the location from midnight to midnight UTC", () => {
    const s = locationAt([rec("oof", true)], new Date("2026-11-24T12:00:00Z"), { text: "Away", showAs: ["oof"], allDayOof: true });
    expect(s).toEqual({ value: "Away", nextChange: new Date("2026-11-25T00:00:00.000Z") });
  });
  it("refuses a show-as name the policy does not know", () => {
    expect(() => parseProfile({ id: "p", displayName: "P", calendar: { changeLocation: { showAs: ["meeting"] } } })).toThrow();
  });
});
