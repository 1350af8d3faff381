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
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SAFETY_NET_TIMERS, startWorld, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { SYNC_KEY_PROP } from "../../src/graph/voicemail.js";

let w: World;
let userId = "";
let peopleUser = "";
const N = 40;
/** Contacts are light (no audio): more of them than one second's worth. */
const CARDS = 150;
type Line = Record<string, unknown>;
const lines = () => ((w.log as { lines?: Line[] }).lines ?? []);

beforeAll(async () => {
  w = await startWorld({ users: ["5901", "5902"], disabledFunctions: SAFETY_NET_TIMERS, sim: { latencyMs: 40 }, env: { UMC_RUN_BUDGET_SECONDS: "1" },
    profiles: [{ id: "people", displayName: "Voice and contacts", contacts: { enabled: true } }] });
  ({ userId } = await w.link("5901", "backlog@contoso.test"));
  ({ userId: peopleUser } = await w.link("5902", "cards@contoso.test", "people"));
  await w.queueDrained(30_000);
}, 60_000);
afterAll(async () => { await w?.stop(); });

describe("run time budget", () => {
  it("a backlog longer than one run's budget is carried by follow-up runs, each copy once", async () => {
    // Delivered while the link is paused, so one run meets the whole backlog.
    await w.deps.state.modifyLink("L-5901", (l) => ({ ...l, state: "paused" }));
    for (let i = 0; i < N; i++) await w.dc.lda("5901", avayaVoiceMessage({ id: `budget-${i}`, seconds: 4 }));
    await w.deps.state.modifyLink("L-5901", (l) => ({ ...l, state: "enabled" }));
    await w.dc.lda("5901", avayaVoiceMessage({ id: `budget-${N}`, seconds: 4 })); // its push starts the first run
    const inbox = () => w.sim.outlook(userId).messages("inbox");
    await expect.poll(() => inbox().length, { timeout: 60_000, interval: 250 }).toBe(N + 1);
    await w.queueDrained();
    const keys = inbox().map((m) => m.ext.get(SYNC_KEY_PROP.toLowerCase())?.value);
    expect(new Set(keys).size).toBe(N + 1);
    const continued = lines().filter((l) => l.event === "voicemail.sync.continues" && l.linkId === "L-5901");
    expect(continued.length).toBeGreaterThanOrEqual(1);
    expect(lines().filter((l) => /did not finish within/.test(JSON.stringify(l.error ?? "")))).toEqual([]);
    expect((await w.deps.state.getLink("L-5901"))!.lastSyncAt).toBeTruthy();
  }, 90_000);

  it("the same for contacts: a backlog of cards is carried by follow-up contacts runs, each once", async () => {
    await w.queueDrained();
    await w.deps.state.modifyLink("L-5902", (l) => ({ ...l, state: "paused" }));
    // Graph's notifications of the connector's own creates would start runs too: only the follow-ups may.
    w.sim.mailboxFaults.arm(peopleUser).dropNotificationsNext = 1_000_000;
    const card = (i: number) => Buffer.from(`From: Avaya <mm@voice.test>\r\nSubject: c${i}\r\nContent-Type: text/vcard\r\n\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nUID:budget-${i}\r\nFN:Person ${i}\r\nN:${i};Person;;;\r\nTEL;TYPE=WORK:+49 30 ${3_000_000 + i}\r\nEND:VCARD\r\n`);
    const c = await w.imap("5902");
    try {
      await c.mailboxCreate("Contacts").catch(() => undefined);
      for (let i = 0; i < CARDS; i++) await c.append("Contacts", card(i));
      await w.deps.state.modifyLink("L-5902", (l) => ({ ...l, state: "enabled" }));
      await c.append("Contacts", card(CARDS)); // its push starts the first run
    } finally { await c.logout(); }
    const people = () => w.sim.people(peopleUser).list();
    await expect.poll(() => people().length, { timeout: 60_000, interval: 250 }).toBe(CARDS + 1);
    await w.queueDrained();
    expect(new Set(people().map((p) => p.props.displayName)).size).toBe(CARDS + 1);
    expect(lines().filter((l) => l.event === "contacts.sync.continues" && l.linkId === "L-5902").length).toBeGreaterThanOrEqual(1);
    expect(lines().filter((l) => /did not finish within/.test(JSON.stringify(l.error ?? "")))).toEqual([]);
  }, 90_000);
});
