/**
 * Crash safety of the contacts executor, as a real death: the run executes in a child process
 * (test/harness/crashRun.ts) with the executor's default parallelism and is killed by SIGKILL
 * the moment its Nth write is answered (an IMAP APPEND or EXPUNGE, a Graph create / PATCH /
 * DELETE, a state row, a conflict record), counted across parallel actions. Each test asserts
 * the crash fired at write N; N runs from 1 to the writes of the phase, measured by a counting
 * run of the same scenario. After the restart both sides hold the same contacts exactly once,
 * per contact (name and title), and one more run changes nothing.
 *
 * The harness asserts the death itself: a crash point that does not kill, or fires at another
 * write, fails the case ("the crash at write N did not fire" / "died at write M, not N";
 * test/harness/crash.ts). No contacts-executor break was run for this suite in issue 23's
 * work (see the voicemail suite for the break that turned its cases red).
 */
import { afterAll, describe, expect, it } from "vitest";
import { startWorld, TENANT, ENDPOINT } from "./world.js";
import { openContactsPorts } from "../../src/app/contacts.js";
import { syncContacts } from "../../src/sync/contactsSync.js";
import { parseVCard } from "../../src/formats/vcard.js";
import { storeItemText } from "../../src/formats/storeItem.js";
import { countWrites, crashAtEveryWrite } from "../harness/crash.js";

const POOL = 60;
const mailboxes = Array.from({ length: POOL }, (_, i) => `k${i}`);
const PROFILE = { id: "people", displayName: "Contacts", contacts: { enabled: true } };
// The harness store is Dovecot: its connection budget (src/app/connectionBudget.ts, 10 per user,
// 200 per address), not the generic 16 per address. Every SIGKILLed worker keeps its slots until
// their lease runs out (60 s, by design: a dead instance cannot hand them back), so with the
// cases running concurrently the generic address budget ran out and runs were put off
// (IMAP_CONNECTION_LIMIT) before they could crash or settle, which is not what this suite tests.
const w = await startWorld({ users: mailboxes, timers: false, quiet: true, profiles: [PROFILE], endpoint: { vendor: "dovecot" } });
afterAll(async () => { await w.stop(); });

/** The restarted worker: one ordinary run in this process. */
async function run(linkId: string) {
  const link = (await w.deps.state.getLink(linkId))!;
  const ports = await openContactsPorts(w.deps, link, (await w.deps.directory()).profile("people"));
  try {
    return await syncContacts({ ...ports, log: w.deps.log, limits: { massDeleteMaxShare: 1 }, ids: { tenantId: TENANT, mailboxId: linkId } });
  } finally {
    await ports.store.close();
  }
}

async function storeCards(mailbox: string) {
  const c = await w.imap(mailbox);
  try {
    await c.mailboxOpen("Contacts");
    const out: Array<{ uid: number; name: string; title?: string; key?: string }> = [];
    if (!(c.mailbox as { exists: number }).exists) return out;
    for await (const m of c.fetch("1:*", { uid: true, source: true })) {
      const f = parseVCard(await storeItemText(m.source!, "vcard"));
      out.push({ uid: m.uid, name: f.displayName ?? "", title: f.jobTitle, key: f.uid });
    }
    return out;
  } finally { await c.logout(); }
}

const card = (uid: string, fn: string, title?: string) => Buffer.from(`Subject: ${fn}\r\nContent-Type: text/vcard\r\n\r\nBEGIN:VCARD\r\nVERSION:4.0\r\nUID:${uid}\r\nFN:${fn}\r\n${title ? `TITLE:${title}\r\n` : ""}END:VCARD\r\n`);

async function appendCard(mailbox: string, src: Buffer) {
  const c = await w.imap(mailbox);
  try { return ((await c.append("Contacts", src)) as { uid: number }).uid; } finally { await c.logout(); }
}
async function expunge(mailbox: string, uid: number) {
  const c = await w.imap(mailbox);
  try { await c.mailboxOpen("Contacts"); await c.messageDelete(String(uid), { uid: true }); } finally { await c.logout(); }
}

/** Same names and titles on both sides, each exactly once. */
async function check(mailbox: string, userId: string) {
  const store = await storeCards(mailbox);
  const graph = w.sim.people(userId).list().map((c) => ({ name: String(c.props.displayName ?? ""), title: (c.props.jobTitle as string | null) ?? undefined }));
  const names = (xs: Array<{ name: string }>) => xs.map((x) => x.name).sort();
  expect(new Set(names(store)).size).toBe(store.length);
  expect(new Set(names(graph)).size).toBe(graph.length);
  expect(names(store)).toEqual(names(graph));
  for (const s of store) expect(s.title ?? null).toEqual(graph.find((g) => g.name === s.name)!.title ?? null);
  return { store, graph };
}

interface Scenario { mailbox: string; userId: string; linkId: string }
let nextMailbox = 0;

/** A fresh mailbox with two cards in the store and two contacts in Outlook, linked (paused). */
async function scenario(): Promise<Scenario> {
  const mailbox = mailboxes[nextMailbox++];
  if (!mailbox) throw new Error(`mailbox pool of ${POOL} exhausted`);
  const user = w.sim.addUser(TENANT, { userPrincipalName: `${mailbox}@contoso.test` });
  const linkId = `kcrash-${mailbox}`;
  await w.deps.state.createLink({ linkId, tenantId: TENANT, endpointId: ENDPOINT, voiceMailbox: mailbox, userId: user.id, profileId: "people", state: "paused" });
  await run(linkId); // creates the store folder
  await appendCard(mailbox, card("s1", "Store One"));
  await appendCard(mailbox, card("s2", "Store Two"));
  const people = w.sim.people(user.id);
  people.add({ displayName: "Graph One" });
  people.add({ displayName: "Graph Two" });
  return { mailbox, userId: user.id, linkId };
}

/** Phase 2: edit/edit conflict, one-sided edits, deletes on both sides, a new card. */
async function phase2(s: Scenario) {
  const first = await storeCards(s.mailbox);
  const people = w.sim.people(s.userId);
  const s1 = first.find((c) => c.name === "Store One")!;
  await appendCard(s.mailbox, card("s1", "Store One", "Store title")); await expunge(s.mailbox, s1.uid);
  const byName = (x: string) => people.list().find((c) => c.props.displayName === x)!;
  await new Promise((r) => setTimeout(r, 5)); // the Outlook edit is the later one
  people.update(byName("Store One").id, { jobTitle: "Outlook title" }); // later edit: wins
  people.update(byName("Graph One").id, { jobTitle: "Edited in Outlook" });
  await expunge(s.mailbox, first.find((c) => c.name === "Graph Two")!.uid);
  people.remove(byName("Store Two").id);
  await appendCard(s.mailbox, card("s3", "Store Three"));
}

async function checkPhase2(s: Scenario) {
  const second = await check(s.mailbox, s.userId);
  expect(second.store.map((c) => c.name).sort()).toEqual(["Graph One", "Store One", "Store Three"]);
  expect(second.store.find((c) => c.name === "Store One")!.title).toBe("Outlook title");
  expect(second.store.find((c) => c.name === "Graph One")!.title).toBe("Edited in Outlook");
  expect((await w.deps.state.listConflicts(s.linkId)).length).toBeGreaterThanOrEqual(1);
}

async function settled(linkId: string) {
  const again = await run(linkId);
  expect(Object.values(again.actions).reduce((a, b) => a + b, 0)).toBe(0);
}

const job = (linkId: string) => ({ env: w.env, kind: "contacts" as const, linkId });

// The counting run: the same scenario, to completion, in the same kind of child process.
const counting = await scenario();
const phase1Writes = await countWrites(job(counting.linkId));
await check(counting.mailbox, counting.userId);
await run(counting.linkId); // a quiet run moves the store cursor past the cards phase 1 wrote (steady state)
await phase2(counting);
const phase2Writes = await countWrites(job(counting.linkId));
await checkPhase2(counting);

describe.concurrent("contacts: the worker dies at every write (SIGKILL)", () => {
  it("the counting run measured the writes of both phases", () => {
    // Two cards each way: an APPEND and a Graph create at least, the cursors last.
    expect(phase1Writes.filter((n) => n === "store.append")).toHaveLength(2);
    expect(phase1Writes.filter((n) => n === "exchange.create")).toHaveLength(2);
    expect(phase1Writes.at(-1)).toBe("state.saveCursors");
    // Outlook's later edits reach the store as a new card replacing the old one (APPEND, EXPUNGE);
    // the new store card is created in Exchange, the one deleted in the store removed there.
    for (const write of ["store.append", "store.remove", "exchange.create", "exchange.remove", "state.putConflict"]) expect(phase2Writes).toContain(write);
    expect(phase2Writes.at(-1)).toBe("state.saveCursors");
  });

  crashAtEveryWrite("contacts", w.env, {
    title: "phase 1 (initial sync both ways)", writes: phase1Writes,
    start: scenario,
    restart: async (s) => {
      await run(s.linkId);
      expect((await check(s.mailbox, s.userId)).store).toHaveLength(4);
      await settled(s.linkId);
    },
  }, "loses and duplicates nothing");

  crashAtEveryWrite("contacts", w.env, {
    title: "phase 2 (conflict, edits and deletes on both sides)", writes: phase2Writes,
    start: async () => {
      const s = await scenario();
      await run(s.linkId);
      expect((await check(s.mailbox, s.userId)).store).toHaveLength(4);
      await run(s.linkId); // steady state, as in the counting run
      await phase2(s);
      return s;
    },
    restart: async (s) => {
      await run(s.linkId);
      await checkPhase2(s);
      await settled(s.linkId);
    },
  }, "loses and duplicates nothing");
});
