/**
 * A run's time budget (UMC_RUN_BUDGET_SECONDS, src/sync/mailboxRun.ts LeaseGuard.timeUp): a
 * backlog larger than one run can carry in its time (a first sync of thousands of messages) is
 * carried by a chain of runs, each stopping cleanly after its budget and handing the rest to a
 * follow-up, instead of one run cut off by the hard deadline with its work still going. Here the
 * budget is 1 s and Graph answers after 40 ms, so 40 deposits take several runs; every timer is
 * off, so only the follow-ups can finish the backlog.
 *
 * Breaks seen red:
 * - voicemail.ts not requesting the follow-up run -> the backlog stops after the first run;
 * - the executor ignoring timeUp -> no run stops early ("continues" never logged);
 * - contacts.ts not requesting the follow-up -> the contacts backlog stops after the first run.
 * - calendar.ts, mail.ts, mirror.ts not requesting the follow-up -> their backlog stops after
 *   the first run (the calendar, e-mail and mirror cases below);
 * - the shared executor (src/sync/actionQueue.ts) ignoring timeUp -> no voicemail, contacts or
 *   calendar run stops early; mailSync / mirrorSync ignoring it -> no e-mail or mirror run does.
 * - the voicemail run reindexing whenever no cursors are saved (not once per partition) -> each
 *   follow-up of a first sync rewrites the index rows of every record copied so far (the first
 *   sync case below; the voicemail bench's 10,000 first sync stalled on it).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SAFETY_NET_TIMERS, startWorld, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { SYNC_KEY_PROP } from "../../src/graph/voicemail.js";
import { ImapFlow } from "imapflow";

let w: World;
let userId = "";
let peopleUser = "";
let calUser = "";
let mailUser = "";
const N = 40;
/**
 * Contacts are light (no audio): more of them than one second's worth. A contacts run takes up
 * to 160 cards at once (src/sync/actionQueue.ts BATCHED_ACTIONS_AT_ONCE, Graph batches of 20 at
 * 4 in flight: about 100 a second at 40 ms), so a backlog must be well beyond that to need a
 * follow-up.
 */
const CARDS = 400;
type Line = Record<string, unknown>;
const lines = () => ((w.log as { lines?: Line[] }).lines ?? []);
const setState = (linkId: string, state: "paused" | "enabled") => w.deps.state.modifyLink(linkId, (l) => ({ ...l, state }));
/** More than one run carried the backlog: at least one stopped at its budget and handed on, none was cut off at the hard deadline. */
function expectCarriedByFollowUps(linkId: string, kind: string) {
  expect(lines().filter((l) => l.event === `${kind}.sync.continues` && l.linkId === linkId).length).toBeGreaterThanOrEqual(1);
  expect(lines().filter((l) => /did not finish within/.test(JSON.stringify(l.error ?? "")))).toEqual([]);
}

beforeAll(async () => {
  // The mirror copies two messages per batch here (UMC_MIRROR_BATCH), so that its local stores take more than a second for the backlog.
  w = await startWorld({ users: ["5901", "5902", "5903", "5904", "5905", "5906"], disabledFunctions: SAFETY_NET_TIMERS, sim: { latencyMs: 40 }, env: { UMC_RUN_BUDGET_SECONDS: "1", UMC_MIRROR_BATCH: "2" },
    backupStore: {},
    profiles: [
      { id: "people", displayName: "Voice and contacts", contacts: { enabled: true } },
      { id: "cal", displayName: "Voice and calendar", calendar: { enabled: true } },
      { id: "e2p", displayName: "E-mail on the phone", emailToPhone: { enabled: true, storeFolderCap: 5000 } },
      { id: "dr", displayName: "Disaster recovery", mirror: { enabled: true } },
    ] });
  ({ userId } = await w.link("5901", "backlog@contoso.test"));
  ({ userId: peopleUser } = await w.link("5902", "cards@contoso.test", "people"));
  ({ userId: calUser } = await w.link("5903", "diary@contoso.test", "cal"));
  ({ userId: mailUser } = await w.link("5904", "reader@contoso.test", "e2p"));
  await w.link("5905", "standby@contoso.test", "dr");
  await w.queueDrained(30_000);
}, 60_000);
afterAll(async () => { await w?.stop(); });

describe("run time budget", () => {
  it("a backlog longer than one run's budget is carried by follow-up runs, each copy once", async () => {
    // Delivered while the link is paused, so one run meets the whole backlog.
    await setState("L-5901", "paused");
    for (let i = 0; i < N; i++) await w.dc.lda("5901", avayaVoiceMessage({ id: `budget-${i}`, seconds: 4 }));
    await setState("L-5901", "enabled");
    await w.dc.lda("5901", avayaVoiceMessage({ id: `budget-${N}`, seconds: 4 })); // its push starts the first run
    const inbox = () => w.sim.outlook(userId).messages("inbox");
    await expect.poll(() => inbox().length, { timeout: 120_000, interval: 250 }).toBe(N + 1);
    await w.queueDrained(60_000);
    const keys = inbox().map((m) => m.ext.get(SYNC_KEY_PROP.toLowerCase())?.value);
    expect(new Set(keys).size).toBe(N + 1);
    expectCarriedByFollowUps("L-5901", "voicemail");
    expect((await w.deps.state.getLink("L-5901"))!.lastSyncAt).toBeTruthy();
  }, 180_000);

  it("a first sync larger than one run is carried by follow-ups that write each record's rows once (no reindex per follow-up)", async () => {
    await w.queueDrained(60_000);
    const c = await w.imap("5906");
    try { for (let i = 0; i < N; i++) await c.append("INBOX", avayaVoiceMessage({ id: `first-${i}`, seconds: 4 })); } finally { await c.logout(); }
    const { userId: firstUser } = await w.link("5906", "first@contoso.test");
    const inbox = () => w.sim.outlook(firstUser).messages("inbox");
    await expect.poll(() => inbox().length, { timeout: 120_000, interval: 250 }).toBe(N);
    await w.queueDrained(60_000);
    expect(new Set(inbox().map((m) => m.ext.get(SYNC_KEY_PROP.toLowerCase())?.value)).size).toBe(N);
    expectCarriedByFollowUps("L-5906", "voicemail");
    // No cursors are saved until the last run: the runs before it must not take the records
    // they read for state kept before index rows existed (each record's put wrote its rows).
    expect(lines().filter((l) => l.event === "voicemail.state.reindexed" && l.linkId === "L-5906")).toEqual([]);
    // The rows are there all the same: an incremental run finds a vanished message's record
    // by its UID's index row, and deletes its copy.
    const d = await w.imap("5906");
    try { await d.messageDelete("1", { uid: true }); } finally { await d.logout(); }
    await expect.poll(() => inbox().length, { timeout: 30_000, interval: 250 }).toBe(N - 1);
  }, 180_000);

  it("the same for contacts: a backlog of cards is carried by follow-up contacts runs, each once", async () => {
    await w.queueDrained(60_000);
    await setState("L-5902", "paused");
    // Graph's notifications of the connector's own creates would start runs too: only the follow-ups may.
    w.sim.mailboxFaults.arm(peopleUser).dropNotificationsNext = 1_000_000;
    const card = (i: number) => Buffer.from(`From: Avaya <mm@voice.test>\r\nSubject: c${i}\r\nContent-Type: text/vcard\r\n\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nUID:budget-${i}\r\nFN:Person ${i}\r\nN:${i};Person;;;\r\nTEL;TYPE=WORK:+49 30 ${3_000_000 + i}\r\nEND:VCARD\r\n`);
    const c = await w.imap("5902");
    try {
      await c.mailboxCreate("Contacts").catch(() => undefined);
      for (let i = 0; i < CARDS; i++) await c.append("Contacts", card(i));
      await setState("L-5902", "enabled");
      await c.append("Contacts", card(CARDS)); // its push starts the first run
    } finally { await c.logout(); }
    const people = () => w.sim.people(peopleUser).list();
    await expect.poll(() => people().length, { timeout: 120_000, interval: 250 }).toBe(CARDS + 1);
    await w.queueDrained(60_000);
    expect(new Set(people().map((p) => p.props.displayName)).size).toBe(CARDS + 1);
    expectCarriedByFollowUps("L-5902", "contacts");
  }, 180_000);

  it("the same for the calendar: hundreds of occurrences are written by follow-up calendar runs, each once", async () => {
    await w.queueDrained(60_000);
    await setState("L-5903", "paused");
    const day = (offset: number, minute: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10) + `T${String(8 + Math.floor(minute / 60)).padStart(2, "0")}:${String(minute % 60).padStart(2, "0")}:00`;
    const EVENTS = 600;
    for (let i = 0; i < EVENTS; i++) {
      const d = 1 + (i % 20);
      const m = Math.floor(i / 20) * 10;
      w.sim.calendar(calUser).add({ subject: `Slot ${i}`, start: { dateTime: day(d, m), timeZone: "UTC" }, end: { dateTime: day(d, m + 5), timeZone: "UTC" } });
    }
    await setState("L-5903", "enabled");
    w.sim.calendar(calUser).add({ subject: "The last", start: { dateTime: day(25, 0), timeZone: "UTC" }, end: { dateTime: day(25, 30), timeZone: "UTC" } }); // its notification starts the first run
    const onStore = async () => { const c = await w.imap("5903"); try { const st = await c.status("Calendar", { messages: true }).catch(() => undefined); return st ? st.messages ?? 0 : 0; } finally { await c.logout(); } };
    await expect.poll(onStore, { timeout: 120_000, interval: 500 }).toBe(EVENTS + 1);
    await w.queueDrained(60_000);
    expect(await onStore()).toBe(EVENTS + 1);
    expectCarriedByFollowUps("L-5903", "calendar");
  }, 180_000);

  it("the same for e-mail on the phone: a first sync of a thousand messages is carried by follow-up mail runs, each copied once", async () => {
    await w.queueDrained(60_000);
    await setState("L-5904", "paused");
    const MAILS = 1000;
    const mail = (s: string) => ({ subject: s, from: { name: "Ann Lee", address: "ann@contoso.test" }, body: { contentType: "text" as const, content: `Text of ${s}` } });
    for (let i = 0; i < MAILS; i++) w.sim.outlook(mailUser).receive(mail(`note ${i}`));
    await setState("L-5904", "enabled");
    w.sim.outlook(mailUser).receive(mail("the last")); // its notification starts the first run
    const keys = async () => {
      const c = await w.imap("5904");
      try {
        const out: string[] = [];
        if (!(c.mailbox as { exists: number }).exists) return out;
        for await (const m of c.fetch("1:*", { headers: ["x-umc-key"] })) { const k = /x-umc-key:\s*(\S+)/i.exec(m.headers?.toString() ?? "")?.[1]; if (k) out.push(k); }
        return out;
      } finally { await c.logout(); }
    };
    await expect.poll(async () => (await keys()).length, { timeout: 120_000, interval: 500 }).toBe(MAILS + 1);
    await w.queueDrained(60_000);
    const copied = await keys();
    expect(new Set(copied).size).toBe(MAILS + 1);
    expect(copied.length).toBe(MAILS + 1);
    expectCarriedByFollowUps("L-5904", "mail");
  }, 180_000);

  it("the same for the disaster-recovery mirror: a backlog is copied by follow-up mirror runs, each message once", async () => {
    await w.queueDrained(60_000);
    await setState("L-5905", "paused");
    const MESSAGES = 400;
    const note = (i: number) => Buffer.from(`From: PBX <pbx@voice.test>\r\nTo: 5905@voice.test\r\nMessage-ID: <mirror-budget-${i}@voice.test>\r\nSubject: m${i}\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\n${"x".repeat(2000)}\r\n`);
    const c = await w.imap("5905");
    try {
      for (let i = 0; i < MESSAGES; i++) await c.append("INBOX", note(i));
      await setState("L-5905", "enabled");
      await c.append("INBOX", note(MESSAGES)); // its push starts the first run
    } finally { await c.logout(); }
    const onBackup = async () => {
      const b = new ImapFlow({ host: w.bc!.host, port: w.bc!.port, secure: false, auth: { user: "5905", pass: "pw-5905" }, logger: false });
      await b.connect();
      await b.mailboxOpen("INBOX");
      try {
        const ids: string[] = [];
        if (!(b.mailbox as { exists: number }).exists) return ids;
        for await (const m of b.fetch("1:*", { envelope: true })) ids.push(m.envelope?.messageId ?? "");
        return ids;
      } finally { await b.logout(); }
    };
    await expect.poll(async () => (await onBackup()).length, { timeout: 120_000, interval: 500 }).toBe(MESSAGES + 1);
    await w.queueDrained(60_000);
    const ids = await onBackup();
    expect(ids.length).toBe(MESSAGES + 1);
    expect(new Set(ids).size).toBe(MESSAGES + 1);
    expectCarriedByFollowUps("L-5905", "mirror");
  }, 180_000);
});
