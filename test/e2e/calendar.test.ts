/**
 * The calendar mirror and the UC location end to end: events changed in the simulator's
 * calendar -> change notification -> graphNotifications -> queue -> worker -> the store's
 * Calendar folder; the location follows the busy events on time (scheduled queue messages)
 * through IMAP METADATA and a signed callback to the voice system.
 */
import fs from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, type World } from "./world.js";
import { parseOccurrence } from "../../src/formats/icalendar.js";
import { storeItemText } from "../../src/formats/storeItem.js";
import { ensureTestCerts } from "../harness/certs.js";
import { signFor } from "../../src/security/endpointSecrets.js";
import { openVoiceMailbox } from "../../src/imap/voiceMailbox.js";
import { syncCalendar, type CalendarCursors, type CalendarRecord } from "../../src/sync/calendarSync.js";
import { ExchangeCalendar } from "../../src/graph/calendar.js";
import { LOCATION_ENTRY } from "../../src/app/calendar.js";
import { enqueueSync } from "../../src/app/syncQueue.js";

let w: World;
let userId = "";
let linkId = "";
const MAILBOX = "4901";
const STORE_SECRET = "s".repeat(8) + "-store-secret-for-tests-0123456789";
const callbacks: Array<{ location: string | null; at: number; valid: boolean }> = [];
let receiver: https.Server;

const day = (offset: number, time = "10:00:00") => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10) + `T${time}`;
const cal = () => w.sim.calendar(userId);

async function storeItems() {
  const c = await w.imap(MAILBOX);
  try {
    await c.mailboxOpen("Calendar");
    const out: Array<{ uid: number; subject?: string; id: string; start: string; isAllDay: boolean; text: string }> = [];
    if (!(c.mailbox as { exists: number }).exists) return out;
    for await (const m of c.fetch("1:*", { uid: true, source: true })) {
      if (!/^X-UMC-Key:/im.test(m.source!.toString("utf8").split("\r\n\r\n")[0]!)) continue; // not the connector's
      const text = await storeItemText(m.source!, "calendar");
      const o = parseOccurrence(text);
      out.push({ uid: m.uid, subject: o.subject, id: o.id, start: o.start, isAllDay: o.isAllDay, text });
    }
    return out.sort((a, b) => a.start.localeCompare(b.start));
  } catch (e) {
    if (/nonexistent|doesn't exist/i.test(String((e as Error).message) + JSON.stringify(e))) return [];
    throw e;
  } finally { await c.logout(); }
}

async function location(): Promise<string | null> {
  const endpoint = (await w.deps.directory()).endpoint("voice-1");
  const s = await openVoiceMailbox(endpoint, MAILBOX, { folder: "INBOX", removal: { mode: "expunge" } });
  try { return await s.getMetadata(LOCATION_ENTRY); } finally { await s.close(); }
}

beforeAll(async () => {
  const certs = ensureTestCerts();
  receiver = https.createServer({ key: fs.readFileSync(certs.serverKeyPath), cert: fs.readFileSync(certs.serverCertPath) }, (req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const ts = Number(req.headers["x-umc-timestamp"]);
      // The endpoint's own secret, with its id and the direction inside the signed text.
      const valid = req.headers["x-umc-signature"] === signFor(STORE_SECRET, "voice-1", "callback", ts, body);
      callbacks.push({ location: (JSON.parse(body) as { location: string | null }).location, at: Date.now(), valid });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  w = await startWorld({
    users: [MAILBOX],
    profiles: [{ id: "cal", displayName: "Calendar", calendar: { enabled: true, pastDays: 1, futureDays: 14, changeLocation: { enabled: true, text: "Meeting" } } }],
    endpoint: { locationCallbackUrl: `https://127.0.0.1:${(receiver.address() as AddressInfo).port}/uc-location` },
  });
  ({ userId, linkId } = await w.link(MAILBOX, "dave@contoso.test", "cal"));
}, 60_000);
afterAll(async () => { await w?.stop(); receiver?.close(); });

describe("calendar mirror end to end", () => {
  it("subscribes to events and mirrors nothing for an empty calendar", async () => {
    await expect.poll(async () => (await w.deps.state.getLink(linkId))?.kinds?.calendar?.lastSyncAt, { timeout: 20_000 }).toBeTruthy();
    // Subscriptions are kept by their own upkeep run, next to the first sync.
    await expect.poll(() => [...w.sim.subscriptions.values()].filter((s) => /events$/.test(s.resource)).length, { timeout: 10_000 }).toBe(1);
    expect(await storeItems()).toEqual([]);
  });

  it("writes one store item per occurrence: single, recurring (expanded), all-day, private redacted", async () => {
    cal().add({ subject: "Budget review", location: { displayName: "Room 4" }, start: { dateTime: day(2), timeZone: "UTC" }, end: { dateTime: day(2, "11:00:00"), timeZone: "UTC" } });
    cal().add({ subject: "Stand-up", start: { dateTime: day(3, "09:00:00"), timeZone: "W. Europe Standard Time" }, end: { dateTime: day(3, "09:15:00"), timeZone: "W. Europe Standard Time" },
      recurrence: { pattern: { type: "daily", interval: 1 }, range: { type: "numbered", startDate: day(3).slice(0, 10), numberOfOccurrences: 3 } } });
    cal().add({ subject: "Offsite", isAllDay: true, start: { dateTime: day(8, "00:00:00"), timeZone: "UTC" }, end: { dateTime: day(9, "00:00:00"), timeZone: "UTC" } });
    cal().add({ subject: "Doctor", sensitivity: "private", start: { dateTime: day(9, "15:00:00"), timeZone: "UTC" }, end: { dateTime: day(9, "16:00:00"), timeZone: "UTC" } });
    cal().add({ subject: "Far away", start: { dateTime: day(40), timeZone: "UTC" }, end: { dateTime: day(40, "11:00:00"), timeZone: "UTC" } });
    await expect.poll(async () => (await storeItems()).length, { timeout: 10_000 }).toBe(6);
    const items = await storeItems();
    expect(items.map((i) => i.subject)).toEqual(["Budget review", "Stand-up", "Stand-up", "Stand-up", "Offsite", "Busy"]);
    expect(items[0]!.text).toContain("LOCATION:Room 4");
    expect(items[4]).toMatchObject({ isAllDay: true, start: day(8).slice(0, 10) });
    expect(items[5]!.text).not.toContain("Doctor");
    expect(items[5]!.text).toContain("CLASS:PRIVATE");
  });

  it("replaces a changed occurrence and removes cancelled and deleted ones", async () => {
    const budget = [...w.sim.userByRef(userId).events.values()].find((e) => e.subject === "Budget review")!;
    cal().update(budget.id, { subject: "Budget review (moved)", start: { dateTime: day(2, "14:00:00"), timeZone: "UTC" }, end: { dateTime: day(2, "15:00:00"), timeZone: "UTC" } });
    const standup = [...w.sim.userByRef(userId).events.values()].find((e) => e.subject === "Stand-up")!;
    const second = cal().instances(new Date(), new Date(Date.now() + 30 * 86_400_000)).filter((i) => i.event.id === standup.id)[1]!;
    cal().changeOccurrence(standup.id, second.originalStart!.toISOString(), { deleted: true });
    const offsite = [...w.sim.userByRef(userId).events.values()].find((e) => e.subject === "Offsite")!;
    cal().update(offsite.id, { isCancelled: true });
    await expect.poll(async () => (await storeItems()).map((i) => i.subject), { timeout: 10_000 }).toEqual(["Budget review (moved)", "Stand-up", "Stand-up", "Busy"]);
    expect((await storeItems())[0]!.start).toBe(new Date(`${day(2, "14:00:00")}Z`).toISOString());
  });

  it("sets the UC location while a busy meeting runs, on time, and clears it after", async () => {
    const start = Date.now() + 3000;
    const iso = (t: number) => new Date(t).toISOString().slice(0, 19);
    cal().add({ subject: "Quick sync", showAs: "busy", start: { dateTime: iso(start), timeZone: "UTC" }, end: { dateTime: iso(start + 3000), timeZone: "UTC" } });
    const startAt = Math.floor(start / 1000) * 1000;
    await expect.poll(location, { timeout: 10_000, interval: 100 }).toBe("Meeting");
    const setLag = Date.now() - startAt;
    await expect.poll(location, { timeout: 10_000, interval: 100 }).toBe(null);
    const clearLag = Date.now() - (startAt + 3000);
    console.log(`UC location: set ${setLag} ms after the meeting started, cleared ${clearLag} ms after it ended`);
    expect(setLag).toBeLessThan(5000);
    expect(clearLag).toBeLessThan(5000);
    await expect.poll(() => callbacks.map((c) => c.location).slice(-2), { timeout: 5000 }).toEqual(["Meeting", null]);
    expect(callbacks.every((c) => c.valid)).toBe(true);
  });

  it("a free or all-day event does not change the location; a busy one after them does", async () => {
    // Break seen red: isBusyRecord counting all-day events as busy -> the busy all-day event
    // holds "Meeting" all day, the location is never cleared and the callbacks check fails.
    const before = callbacks.length;
    const iso = (t: number) => new Date(t).toISOString().slice(0, 19);
    const now = Date.now();
    const busyStart = now + 4000;
    cal().add({ subject: "Holiday", isAllDay: true, showAs: "busy", start: { dateTime: day(0, "00:00:00"), timeZone: "UTC" }, end: { dateTime: day(1, "00:00:00"), timeZone: "UTC" } });
    cal().add({ subject: "Focus time", showAs: "free", start: { dateTime: iso(now), timeZone: "UTC" }, end: { dateTime: iso(now + 8000), timeZone: "UTC" } });
    cal().add({ subject: "Quick call", showAs: "busy", start: { dateTime: iso(busyStart), timeZone: "UTC" }, end: { dateTime: iso(busyStart + 2000), timeZone: "UTC" } });
    // The run saw all three (they are mirrored), then the busy call alone sets the location, on its start.
    await expect.poll(async () => (await storeItems()).map((i) => i.subject).filter((x) => ["Holiday", "Focus time", "Quick call"].includes(x!)).sort(), { timeout: 10_000 }).toEqual(["Focus time", "Holiday", "Quick call"]);
    await expect.poll(() => callbacks.slice(before).map((c) => c.location), { timeout: 15_000, interval: 100 }).toEqual(["Meeting", null]);
    const set = callbacks.slice(before)[0]!;
    expect(set.at).toBeGreaterThanOrEqual(Math.floor(busyStart / 1000) * 1000 - 250);
  });
});

describe("calendar: what Graph answers that was not expected (issue 18)", () => {
  it("a non-UTC answer, tzone://Microsoft/Utc and an unknown attendee response mirror; an event without a usable zone is skipped with its reason and the rest mirrors", async () => {
    const link = async () => (await w.deps.state.getLink(linkId))!.kinds?.calendar;
    cal().add({ subject: "Berlin answer", start: { dateTime: day(6, "09:00:00"), timeZone: "UTC" }, end: { dateTime: day(6, "10:00:00"), timeZone: "UTC" }, answer: { timeZone: "W. Europe Standard Time" } });
    cal().add({ subject: "Exchange UTC name", start: { dateTime: day(6, "11:00:00"), timeZone: "UTC" }, end: { dateTime: day(6, "12:00:00"), timeZone: "UTC" }, answer: { timeZone: "tzone://Microsoft/Utc" } });
    cal().add({ subject: "New response", start: { dateTime: day(6, "13:00:00"), timeZone: "UTC" }, end: { dateTime: day(6, "14:00:00"), timeZone: "UTC" },
      answer: { fields: { showAs: "focusTime", attendees: [{ type: "observer", emailAddress: { name: "Eve", address: "eve@contoso.test" }, status: { response: "delegated", time: "2026-01-01T00:00:00Z" } }] } } });
    const custom = cal().add({ subject: "Custom zone", start: { dateTime: day(6, "15:00:00"), timeZone: "UTC" }, end: { dateTime: day(6, "16:00:00"), timeZone: "UTC" }, answer: { timeZone: "tzone://Microsoft/Custom" } });
    cal().add({ subject: "After the bad one", start: { dateTime: day(6, "17:00:00"), timeZone: "UTC" }, end: { dateTime: day(6, "18:00:00"), timeZone: "UTC" } });
    const mirrored = async () => (await storeItems()).filter((i) => i.start.startsWith(day(6).slice(0, 10)));
    await expect.poll(async () => (await mirrored()).map((i) => i.subject), { timeout: 15_000 }).toEqual(["Berlin answer", "Exchange UTC name", "New response", "After the bad one"]);
    const items = await mirrored();
    // The Berlin wall time (UTC+2 or +1) was converted back to the instant the event has.
    expect(items[0]!.start).toBe(new Date(`${day(6, "09:00:00")}Z`).toISOString());
    expect(items[1]!.start).toBe(new Date(`${day(6, "11:00:00")}Z`).toISOString());
    // Break seen red: PARTSTAT[a.response] with no fallback -> ical.js TypeError, the run fails every time and nothing of day 5 mirrors.
    expect(parseOccurrence(items[2]!.text)).toMatchObject({ showAs: "focusTime", attendees: [{ address: "eve@contoso.test", response: "delegated", type: "observer" }] });
    // Break seen red: toOccurrence's error not caught per event -> the whole read aborts, lastError set, no item of day 5.
    await expect.poll(async () => (await link())?.skipped, { timeout: 10_000 }).toBe(1);
    expect((await link())?.lastError).toBeUndefined();
    const records = await w.deps.state.recordState<CalendarRecord, CalendarCursors>(linkId, "calendar").loadItems();
    const skipped = records.filter((r) => r.skipped);
    expect(skipped).toHaveLength(1);
    expect(skipped[0]!.skipped).toMatchObject({ code: "CALENDAR_EVENT_UNUSABLE" });
    expect(skipped[0]!.skipped!.message).toContain("tzone://Microsoft/Custom");
    // Graph answers it properly again: mirrored, and the reason goes.
    cal().update(custom.id, { answer: undefined });
    await expect.poll(async () => (await mirrored()).map((i) => i.subject), { timeout: 15_000 }).toContain("Custom zone");
    await expect.poll(async () => (await link())?.skipped, { timeout: 10_000 }).toBe(0);
  });
});

describe("calendar: what the store holds that is not ours", () => {
  it("leaves a malformed or foreign item in the Calendar folder alone and keeps mirroring", async () => {
    const c = await w.imap(MAILBOX);
    try { await c.append("Calendar", Buffer.from("Subject: broken\r\nContent-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:garbage\r\n")); } finally { await c.logout(); }
    const before = (await w.deps.state.getLink(linkId))!.kinds?.calendar?.items ?? 0;
    await enqueueSync(w.deps.syncQueue, { linkId, kind: "calendar", reason: "reconcile", at: Date.now() });
    cal().add({ subject: "After the junk", start: { dateTime: day(4, "12:00:00"), timeZone: "UTC" }, end: { dateTime: day(4, "13:00:00"), timeZone: "UTC" } });
    await expect.poll(async () => (await w.deps.state.getLink(linkId))!.kinds?.calendar?.items, { timeout: 10_000 }).toBe(before + 1);
    expect((await w.deps.state.getLink(linkId))!.kinds?.calendar?.lastError).toBeUndefined();
    const raw = await w.imap(MAILBOX);
    try {
      await raw.mailboxOpen("Calendar");
      const subjects: string[] = [];
      for await (const m of raw.fetch("1:*", { envelope: true })) subjects.push(m.envelope?.subject ?? "");
      expect(subjects).toContain("broken");
      expect(subjects).toContain("After the junk");
    } finally { await raw.logout(); }
  });
});

describe("calendar window", () => {
  it("slides: occurrences that left the window leave the store, nothing else is rewritten", async () => {
    const link = (await w.deps.state.getLink(linkId))!;
    const endpoint = (await w.deps.directory()).endpoint("voice-1");
    const before = await storeItems();
    const run = async (now: Date) => {
      const store = await openVoiceMailbox(endpoint, MAILBOX, { folder: "Calendar", removal: { mode: "expunge" } });
      try {
        return await syncCalendar({
          store, exchange: { changes: (win, d) => new ExchangeCalendar(w.deps.graph(link.tenantId), link.userId).changes(win, d) },
          state: w.deps.state.recordState<CalendarRecord, CalendarCursors>(linkId, "calendar"), window: { pastDays: 1, futureDays: 14 }, now,
          limits: { massDeleteMaxShare: 0.5 }, log: w.log, ids: { tenantId: link.tenantId, mailboxId: linkId },
        });
      } finally { await store.close(); }
    };
    // A week later the budget review (day 2) is more than a day in the past.
    const r = await run(new Date(Date.now() + 7 * 86_400_000));
    expect(r.windowMoved).toBe(true);
    const after = await storeItems();
    expect(after.map((i) => i.subject)).not.toContain("Budget review (moved)");
    expect(after.map((i) => i.subject)).toContain("Busy");
    // Items still in the window kept their UID (not rewritten).
    const busyBefore = before.find((i) => i.subject === "Busy")!;
    expect(after.find((i) => i.subject === "Busy")!.uid).toBe(busyBefore.uid);
    expect(r.actions.write).toBe(0);
    // Back to today: the review comes back.
    await run(new Date());
    expect((await storeItems()).map((i) => i.subject)).toContain("Budget review (moved)");
  });
});
