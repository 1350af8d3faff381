/**
 * Contacts and calendar state access that follows the changes, not the address book or the
 * calendar (issue #19, point 1),
 * through the real trigger paths (store push, Graph change notification -> queue -> worker),
 * every safety-net timer off:
 *  - an incremental run reads only the records its changes name (the run's
 *    `contacts.sync.done` line says how many it read); a full run reads them all;
 *  - a record row that cannot be read is recorded (STATE_CORRUPT, logged, counted skipped) and
 *    left alone; the mailbox's other contacts keep syncing, incremental and full runs alike.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SAFETY_NET_TIMERS, startWorld, type World } from "./world.js";
import { runContactsRequest } from "../../src/app/contacts.js";
import { parseVCard } from "../../src/formats/vcard.js";
import { storeItemText } from "../../src/formats/storeItem.js";
import type { ContactCursors, ContactRecord } from "../../src/sync/contactsSync.js";
import { runCalendarRequest } from "../../src/app/calendar.js";
import type { CalendarCursors, CalendarRecord } from "../../src/sync/calendarSync.js";
import type { Deps } from "../../src/app/deps.js";

let w: World;
let userId = "";
let linkId = "";
const MAILBOX = "4811";
const SEED = 25;
const CAL_MAILBOX = "4812";
let calUser = "";
let calLink = "";
const people = () => w.sim.people(userId);
const byName = (name: string) => people().list().find((c) => c.props.displayName === name);
const lines = () => (w.log as { lines?: Array<Record<string, unknown>> }).lines ?? [];
const doneLines = () => lines().filter((l) => l.event === "contacts.sync.done" && l.linkId === linkId);
const state = () => w.deps.state.recordState<ContactRecord, ContactCursors>(linkId, "contacts");

async function withContacts<T>(fn: (c: Awaited<ReturnType<World["imap"]>>) => Promise<T>): Promise<T> {
  const c = await w.imap(MAILBOX);
  try { await c.mailboxOpen("Contacts"); return await fn(c); } finally { await c.logout(); }
}
const storeCards = () => withContacts(async (c) => {
  const out: Array<{ uid: number; name?: string; title?: string }> = [];
  if (!(c.mailbox as { exists: number }).exists) return out;
  for await (const m of c.fetch("1:*", { uid: true, source: true })) {
    const f = parseVCard(await storeItemText(m.source!, "vcard"));
    out.push({ uid: m.uid, name: f.displayName, title: f.jobTitle });
  }
  return out;
});
const card = (uid: string, fn: string) => `From: Avaya <mm@voice.test>\r\nSubject: ${fn}\r\nContent-Type: text/vcard; charset=utf-8\r\n\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nUID:${uid}\r\nFN:${fn}\r\nN:${fn.split(" ").reverse().join(";")};;;\r\nTEL;TYPE=WORK:+49 30 ${uid.replace(/\D/g, "").padStart(4, "0")}\r\nEND:VCARD\r\n`;
const append = (text: string) => withContacts(async (c) => (await c.append("Contacts", Buffer.from(text)))!);

async function until(ok: () => Promise<boolean>, what: string) {
  for (const end = Date.now() + 60_000; !(await ok());) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  w = await startWorld({ users: [MAILBOX, CAL_MAILBOX], disabledFunctions: SAFETY_NET_TIMERS, profiles: [
    { id: "people", displayName: "Contacts", contacts: { enabled: true } },
    { id: "cal", displayName: "Calendar", calendar: { enabled: true, pastDays: 1, futureDays: 14 } },
  ] });
  ({ userId, linkId } = await w.link(MAILBOX, "erin@contoso.test", "people"));
  ({ userId: calUser, linkId: calLink } = await w.link(CAL_MAILBOX, "fred@contoso.test", "cal"));
  await until(async () => Boolean((await w.deps.state.getLink(linkId))?.kinds?.contacts?.lastSyncAt), "the first contacts sync");
  for (let i = 0; i < SEED; i++) await append(card(`seed-${i}`, `Seed Person${i}`));
  await until(async () => people().list().length === SEED, `${SEED} contacts in Exchange`);
  await w.queueDrained();
  // A full run (as the reconcile makes) settles the counts kept with the cursors.
  await runContactsRequest(w.deps, { linkId, kind: "contacts", reason: "reconcile", at: Date.now() });
}, 120_000);
afterAll(async () => { await w?.stop(); });

describe("contacts state access that grows with the changes", () => {
  it("reads only the records its changes name on incremental runs, every record on full runs", async () => {
    expect((await state().loadCursors())?.counts).toEqual({ linked: SEED, skipped: 0 });
    const from = doneLines().length;
    await append(card("new-1", "Newton Store"));
    await expect.poll(() => byName("Newton Store"), { timeout: 10_000 }).toBeTruthy();
    await w.queueDrained();
    people().update(byName("Seed Person3")!.id, { jobTitle: "Engineer" });
    await expect.poll(async () => (await storeCards()).find((c) => c.name === "Seed Person3")?.title, { timeout: 10_000 }).toBe("Engineer");
    await w.queueDrained();
    const incremental = doneLines().slice(from);
    expect(incremental.map((l) => Number(l.createInGraph ?? 0) + Number(l.updateImap ?? 0))).toEqual([1, 1]);
    // The new card names no record (its key is read once: 0 found); the Outlook edit names one
    // record, and the delta may still carry the previous run's own create (its echo): <= 2.
    expect(incremental[0]!.itemsRead).toBeLessThanOrEqual(1);
    expect(incremental[1]!.itemsRead).toBeGreaterThanOrEqual(1);
    expect(incremental[1]!.itemsRead).toBeLessThanOrEqual(2);
    expect((await state().loadCursors())?.counts).toEqual({ linked: SEED + 1, skipped: 0 });

    const full = await runContactsRequest(w.deps, { linkId, kind: "contacts", reason: "reconcile", at: Date.now() });
    expect(full.status === "ran" && full.report?.itemsRead).toBe(SEED + 1);
    expect((await state().loadCursors())?.counts).toEqual({ linked: SEED + 1, skipped: 0 });
  });

  it("a corrupt record row is recorded and skipped, and never fails the mailbox", async () => {
    const victim = (await state().loadItems()).find((r) => r.syncKey === "seed-7")!;
    const records = await w.deps.state.tableClients.client("records");
    const pk = `${linkId}|contacts`.replace(/[^A-Za-z0-9._@+=-]/g, (c) => "~" + c.codePointAt(0)!.toString(16).padStart(4, "0"));
    const row = await records.getEntity<Record<string, unknown>>(pk, victim.syncKey);
    await records.updateEntity({ ...row, partitionKey: row.partitionKey!, rowKey: row.rowKey!, data: "{\"syncKey\": \"seed-7\", \"imapUid\": " }, "Replace");
    const cardsBefore = (await storeCards()).length;

    // Outlook edits the contact whose record is corrupt, and a new card arrives on the store:
    // the new one is copied, the corrupt one is left alone (its store card keeps its content).
    people().update(victim.graphId!, { jobTitle: "Ignored" });
    await append(card("new-2", "Nora After"));
    await expect.poll(() => byName("Nora After"), { timeout: 10_000 }).toBeTruthy();
    await w.queueDrained();
    const kinds = async () => (await w.deps.state.getLink(linkId))?.kinds?.contacts;
    expect((await kinds())?.lastError).toBeUndefined();
    expect((await storeCards()).find((c) => c.name === "Seed Person7")?.title).toBeUndefined();
    expect(lines().some((l) => l.event === "contacts.state.corrupt" && l.code === "STATE_CORRUPT" && l.syncKey === "seed-7")).toBe(true);

    // A full run lists every row: the corrupt one is skipped again, nothing is copied twice or deleted for it.
    const full = await runContactsRequest(w.deps, { linkId, kind: "contacts", reason: "reconcile", at: Date.now() });
    expect(full.status).toBe("ran");
    expect(full.status === "ran" && full.report?.corrupt).toBe(1);
    expect((await kinds())?.lastError).toBeUndefined();
    expect((await kinds())?.skipped).toBe(1);
    expect((await storeCards()).length).toBe(cardsBefore + 1);
    expect(people().list().length).toBe(SEED + 2);
    expect((await state().loadItems()).find((r) => r.syncKey === "seed-7")?.skipped?.code).toBe("STATE_CORRUPT");
  });

  it("lists the records instead of reading them one by one when the changes name about as many as the link keeps", async () => {
    // Outlook edits every contact while the link is paused (their notifications start runs
    // that skip it), so one run then meets them all, as the run after a first sync meets its
    // own creations. Point reads would be two per change (index row, record); a listing is one
    // request per 1,000 records. The run's state port counts what it is asked to read.
    const edited = people().list().filter((c) => c.props.displayName !== "Seed Person7");
    expect(edited.length).toBe(SEED + 1);
    await w.deps.state.modifyLink(linkId, (l) => ({ ...l, state: "paused" }));
    for (const c of edited) people().update(c.id, { jobTitle: "Listed" });
    await new Promise((r) => setTimeout(r, 1000)); // the simulator's notifications (batched for 20 ms) are in
    await w.queueDrained();
    await w.deps.state.modifyLink(linkId, (l) => ({ ...l, state: "enabled" }));
    const reads = { listings: 0, pointReads: 0 };
    const run = await runContactsRequest(countingRecordReads(w.deps, reads), { linkId, kind: "contacts", reason: "poll", at: Date.now() });
    expect(run.status === "ran" && run.report?.actions.updateImap).toBe(edited.length);
    expect((await storeCards()).filter((c) => c.title === "Listed")).toHaveLength(edited.length);
    expect(reads).toEqual({ listings: 1, pointReads: 0 });
    expect((await state().loadCursors())?.counts).toEqual({ linked: SEED + 1, skipped: 1 });
  });
});

/** The deps with a state store whose record ports count the listings and point reads asked of them. */
function countingRecordReads(deps: Deps, reads: { listings: number; pointReads: number }): Deps {
  const real = deps.state;
  // The store's methods are read-only properties: the proxy wraps an empty object and forwards.
  const state = new Proxy({}, {
    get(_t, key) {
      if (key !== "recordState") { const v = Reflect.get(real, key) as unknown; return typeof v === "function" ? v.bind(real) : v; }
      return (...args: Parameters<typeof real.recordState>) => {
        const port = real.recordState(...args);
        return {
          ...port,
          loadItems: () => { reads.listings++; return port.loadItems(); },
          loadItemsByKey: (keys: string[]) => { reads.pointReads += keys.length; return port.loadItemsByKey!(keys); },
          lookupKeys: (q: { uids: number[]; graphIds: string[] }) => { reads.pointReads += q.uids.length + q.graphIds.length; return port.lookupKeys!(q); },
        };
      };
    },
  }) as typeof real;
  return { ...deps, state };
}

describe("calendar state access that grows with the changes", () => {
  const day = (offset: number, time = "10:00:00") => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10) + `T${time}`;
  const cal = () => w.sim.calendar(calUser);
  const event = (subject: string) => [...w.sim.userByRef(calUser).events.values()].find((e) => e.subject === subject)!;
  const calState = () => w.deps.state.recordState<CalendarRecord, CalendarCursors>(calLink, "calendar");
  const calDone = () => lines().filter((l) => l.event === "calendar.sync.done" && l.linkId === calLink);
  const subjects = async () => {
    const c = await w.imap(CAL_MAILBOX);
    try {
      await c.mailboxOpen("Calendar");
      const out: string[] = [];
      if (!(c.mailbox as { exists: number }).exists) return out;
      for await (const m of c.fetch("1:*", { uid: true, envelope: true })) out.push(m.envelope?.subject ?? "");
      return out.sort();
    } finally { await c.logout(); }
  };

  it("reads only the records its changes name on incremental runs; a corrupt record is skipped there and repaired by a full run", async () => {
    await until(async () => Boolean((await w.deps.state.getLink(calLink))?.kinds?.calendar?.lastSyncAt), "the first calendar sync");
    for (let i = 0; i < 12; i++) cal().add({ subject: `Meeting ${String(i).padStart(2, "0")}`, start: { dateTime: day(1 + (i % 10), "09:00:00"), timeZone: "UTC" }, end: { dateTime: day(1 + (i % 10), "09:30:00"), timeZone: "UTC" } });
    await until(async () => (await subjects()).length === 12, "12 store items");
    await w.queueDrained();
    await runCalendarRequest(w.deps, { linkId: calLink, kind: "calendar", reason: "reconcile", at: Date.now() });
    expect((await calState().loadCursors())?.counts).toEqual({ linked: 12, skipped: 0 });

    const from = calDone().length;
    cal().update(event("Meeting 03").id, { subject: "Meeting 03 (moved)" });
    await expect.poll(subjects, { timeout: 10_000 }).toContain("Meeting 03 (moved)");
    await w.queueDrained();
    expect(calDone().slice(from).map((l) => l.itemsRead)).toEqual([1]);
    expect((await calState().loadCursors())?.counts).toEqual({ linked: 12, skipped: 0 });

    // A corrupt record: the event's change is skipped (its old copy stays), the others mirror.
    const victim = event("Meeting 05");
    const records = await w.deps.state.tableClients.client("records");
    const pk = `${calLink}|calendar`.replace(/[^A-Za-z0-9._@+=-]/g, (c) => "~" + c.codePointAt(0)!.toString(16).padStart(4, "0"));
    const rk = victim.id.replace(/[^A-Za-z0-9._@+=-]/g, (c) => "~" + c.codePointAt(0)!.toString(16).padStart(4, "0"));
    const row = await records.getEntity<Record<string, unknown>>(pk, rk);
    await records.updateEntity({ ...row, partitionKey: row.partitionKey!, rowKey: row.rowKey!, data: "[1, 2" }, "Replace");
    cal().update(victim.id, { subject: "Meeting 05 (moved)" });
    cal().update(event("Meeting 07").id, { subject: "Meeting 07 (moved)" });
    await expect.poll(subjects, { timeout: 10_000 }).toContain("Meeting 07 (moved)");
    await w.queueDrained();
    expect(await subjects()).toContain("Meeting 05");
    expect(await subjects()).not.toContain("Meeting 05 (moved)");
    expect(await subjects()).toHaveLength(12);
    expect((await w.deps.state.getLink(calLink))?.kinds?.calendar?.lastError).toBeUndefined();
    expect(lines().some((l) => l.event === "calendar.state.corrupt" && l.linkId === calLink && l.code === "STATE_CORRUPT")).toBe(true);

    // The full run settles it against the listing: one copy of each event, the corrupt one rewritten.
    const full = await runCalendarRequest(w.deps, { linkId: calLink, kind: "calendar", reason: "reconcile", at: Date.now() });
    expect(full.status === "ran" && full.report?.itemsRead).toBe(12);
    const after = await subjects();
    expect(after).toHaveLength(12);
    expect(after).toContain("Meeting 05 (moved)");
    expect(after).not.toContain("Meeting 05");
    expect((await calState().loadCursors())?.counts).toEqual({ linked: 12, skipped: 0 });
  });

  it("lists the records when the changes name as many as the link keeps", async () => {
    // Every event moved while the link is paused: one run meets 12 changes for 12 records.
    await w.deps.state.modifyLink(calLink, (l) => ({ ...l, state: "paused" }));
    for (const e of [...w.sim.userByRef(calUser).events.values()]) cal().update(e.id, { subject: `${e.subject} again` });
    await new Promise((r) => setTimeout(r, 1000)); // the simulator's notifications are in
    await w.queueDrained();
    await w.deps.state.modifyLink(calLink, (l) => ({ ...l, state: "enabled" }));
    const reads = { listings: 0, pointReads: 0 };
    const run = await runCalendarRequest(countingRecordReads(w.deps, reads), { linkId: calLink, kind: "calendar", reason: "poll", at: Date.now() });
    expect(run.status).toBe("ran");
    expect((await subjects()).filter((s) => s.endsWith(" again"))).toHaveLength(12);
    expect(reads).toEqual({ listings: 1, pointReads: 0 });
    expect((await calState().loadCursors())?.counts).toEqual({ linked: 12, skipped: 0 });
  });
});
