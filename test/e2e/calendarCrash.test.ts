/**
 * Crash safety of the calendar mirror: the worker dies right after its Nth write (a state
 * row, an APPEND, an EXPUNGE, the cursors), for every N, in the first mirror and in a round
 * of changes, and runs again: the store then holds every occurrence of the window exactly
 * once with its current content, and one more run writes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, TENANT, ENDPOINT, type World } from "./world.js";
import { openVoiceMailbox } from "../../src/imap/voiceMailbox.js";
import { ExchangeCalendar } from "../../src/graph/calendar.js";
import { syncCalendar, type CalendarCursors, type CalendarRecord, type CalendarStorePort } from "../../src/sync/calendarSync.js";
import type { RecordStatePort } from "../../src/state/stateStore.js";
import { parseOccurrence } from "../../src/formats/icalendar.js";
import { storeItemText } from "../../src/formats/storeItem.js";

class Crash extends Error {}
const N_MAX = 14;
const mailboxes = Array.from({ length: N_MAX }, (_, i) => `m${i + 1}`);
let w: World;

beforeAll(async () => { w = await startWorld({ users: mailboxes, timers: false, quiet: true }); }, 60_000);
afterAll(async () => { await w?.stop(); });

async function run(linkId: string, mailbox: string, userId: string, crashAfter?: number) {
  const store = await openVoiceMailbox((await w.deps.directory()).endpoint(ENDPOINT), mailbox, { folder: "Calendar", removal: { mode: "expunge" }, createFolder: true });
  let writes = 0;
  const after = async <T>(r: Promise<T>) => { const v = await r; if (++writes === crashAfter) throw new Crash(`crash after write ${writes}`); return v; };
  const state = w.deps.state.recordState<CalendarRecord, CalendarCursors>(linkId, "calendar");
  const s: CalendarStorePort = { listKeys: () => store.listKeys(), append: (b) => after(store.append(b)), remove: (u) => after(store.remove(u)) };
  const st: RecordStatePort<CalendarRecord, CalendarCursors> = { ...state, putItem: (i) => after(state.putItem(i)), deleteItem: (k) => after(state.deleteItem(k)), saveCursors: (c) => after(state.saveCursors(c)) };
  try {
    return await syncCalendar({
      store: s, exchange: { changes: (win, d) => new ExchangeCalendar(w.deps.graph(TENANT), userId).changes(win, d) }, state: st,
      window: { pastDays: 1, futureDays: 14 }, now: new Date(), limits: { massDeleteMaxShare: 1 }, log: w.deps.log, ids: { tenantId: TENANT, mailboxId: linkId }, parallel: 1,
    });
  } catch (e) {
    if (e instanceof Crash || (e as { cause?: unknown }).cause instanceof Crash) return undefined;
    throw e;
  } finally { await store.close(); }
}

async function storeSubjects(mailbox: string) {
  const c = await w.imap(mailbox);
  try {
    await c.mailboxOpen("Calendar");
    const out: string[] = [];
    if (!(c.mailbox as { exists: number }).exists) return out;
    for await (const m of c.fetch("1:*", { source: true })) out.push(parseOccurrence(await storeItemText(m.source!, "calendar")).subject ?? "");
    return out.sort();
  } finally { await c.logout(); }
}

const at = (days: number, hour: number) => new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 11) + `${String(hour).padStart(2, "0")}:00:00`;

describe("calendar: crash after every write step", () => {
  for (let n = 1; n <= N_MAX; n++) {
    it(`mirrors every occurrence exactly once when the worker dies after write ${n}`, async () => {
      const mailbox = `m${n}`;
      const user = w.sim.addUser(TENANT, { userPrincipalName: `${mailbox}@contoso.test` });
      const linkId = `mcrash-${n}`;
      await w.deps.state.createLink({ linkId, tenantId: TENANT, endpointId: ENDPOINT, voiceMailbox: mailbox, userId: user.id, profileId: "default", state: "paused" });
      const cal = w.sim.calendar(user.id);
      const ids = ["A", "B", "C"].map((s, i) => cal.add({ subject: s, start: { dateTime: at(i + 1, 9), timeZone: "UTC" }, end: { dateTime: at(i + 1, 10), timeZone: "UTC" } }).id);

      await run(linkId, mailbox, user.id, n);
      await run(linkId, mailbox, user.id);
      expect(await storeSubjects(mailbox)).toEqual(["A", "B", "C"]);
      await run(linkId, mailbox, user.id); // steady state: the cursor is past phase 1

      cal.update(ids[0]!, { subject: "A2" });
      cal.remove(ids[1]!);
      cal.add({ subject: "D", start: { dateTime: at(5, 9), timeZone: "UTC" }, end: { dateTime: at(5, 10), timeZone: "UTC" } });
      await run(linkId, mailbox, user.id, n);
      await run(linkId, mailbox, user.id);
      expect(await storeSubjects(mailbox)).toEqual(["A2", "C", "D"]);
      const again = await run(linkId, mailbox, user.id);
      expect(again!.actions).toEqual({ write: 0, remove: 0, removeStray: 0, forget: 0 });
    });
  }
});
