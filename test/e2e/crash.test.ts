/**
 * Crash safety of the real voicemail executor, as a real death: the run executes in a child
 * process (test/harness/crashRun.ts) with the executor's default 8 parallel actions and is
 * killed by SIGKILL the moment its Nth write is answered (a Graph create or PATCH or move, an
 * IMAP STORE/EXPUNGE, a state row), counted across the parallel actions; the other actions'
 * requests die in flight. Each test asserts that the crash fired at write N. N runs from 1 to
 * the number of writes the phase makes, measured by a counting run of the same scenario in
 * the same kind of process (not a constant). Then the worker "restarts" (a fresh run) and
 * every voice message is in Exchange exactly once, per message, with the same read state on
 * both sides; deletes have landed on both sides; one more run changes nothing.
 *
 * Break used: the executor saves its cursors before applying the actions (voicemailSync.ts
 * step 4 moved before step 3) -> "phase 2 (edits on both sides): dies at write 1/2/3 of 10 ..."
 * fail per message ("read state of <c1-0@pbx.example.test>: expected true to be false",
 * "copies of <c2-1@pbx.example.test>: expected +0 to be 1"): the restarted run no longer
 * sees the edits the dead one had not applied.
 */
import { afterAll, describe, expect, it } from "vitest";
import { startWorld, TENANT, ENDPOINT } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { openVoicemailPorts } from "../../src/app/voicemail.js";
import { syncVoicemail } from "../../src/sync/voicemailSync.js";
import { SYNC_KEY_PROP } from "../../src/graph/voicemail.js";
import { countWrites, crashAtEveryWrite } from "../harness/crash.js";

// Mailboxes for the counting run and one per crash case (Dovecot's users are fixed at start).
const POOL = 40;
const mailboxes = Array.from({ length: POOL }, (_, i) => `c${i}`);
// The harness store is Dovecot: its connection budget (10 per user, 200 per address), not the
// generic 16 per address, which SIGKILLed workers' slots (held until their lease runs out, by
// design) exhaust when the cases run concurrently (see contactsCrash.test.ts).
const w = await startWorld({ users: mailboxes, timers: false, quiet: true, endpoint: { vendor: "dovecot" } });
afterAll(async () => { await w.stop(); });

let nextMailbox = 0;
interface Scenario { mailbox: string; userId: string; linkId: string; messageIds: string[] }

/** A fresh mailbox with three voice messages, linked (paused: this suite drives the executor). */
async function scenario(): Promise<Scenario> {
  const mailbox = mailboxes[nextMailbox++];
  if (!mailbox) throw new Error(`mailbox pool of ${POOL} exhausted: the scenario makes more writes than expected`);
  const user = w.sim.addUser(TENANT, { userPrincipalName: `${mailbox}@contoso.test` });
  const linkId = `crash-${mailbox}`;
  await w.deps.state.createLink({ linkId, tenantId: TENANT, endpointId: ENDPOINT, voiceMailbox: mailbox, userId: user.id, profileId: "default", state: "paused" });
  const messageIds: string[] = [];
  for (let i = 0; i < 3; i++) messageIds.push(await deposit(mailbox, `${mailbox}-${i}`));
  return { mailbox, userId: user.id, linkId, messageIds };
}

async function deposit(mailbox: string, id: string): Promise<string> {
  const msg = avayaVoiceMessage({ id });
  await w.dc.lda(mailbox, msg);
  return /^Message-ID:\s*(\S+)/im.exec(msg.toString("utf8"))![1]!;
}

/** Phase 2: three different messages read in Outlook, deleted in Outlook, heard on the phone; one new message. */
async function phase2(s: Scenario) {
  const items = (await w.deps.state.voicemailState(s.linkId).loadItems()).sort((a, b) => a.imapUid! - b.imapUid!);
  const outlook = w.sim.outlook(s.userId);
  outlook.markRead(items[0]!.graphId!);
  outlook.delete(items[1]!.graphId!);
  const c = await w.imap(s.mailbox);
  await c.messageFlagsAdd(String(items[2]!.imapUid), ["\\Seen"], { uid: true });
  await c.logout();
  s.messageIds.push(await deposit(s.mailbox, `${s.mailbox}-new`));
  return { deleted: items[1]!.syncKey };
}

/** The restarted worker: one ordinary run in this process. */
async function run(linkId: string) {
  const link = (await w.deps.state.getLink(linkId))!;
  const ports = await openVoicemailPorts(w.deps, link);
  try {
    return await syncVoicemail({ ...ports, log: w.deps.log, limits: { massDeleteMaxShare: 1 }, ids: { tenantId: TENANT, mailboxId: linkId } });
  } finally {
    await ports.voice.close();
  }
}

/**
 * Per message: each voice message left in the store has exactly one copy in Exchange (by its
 * sync key), with the store's read state; no copy without a message; records agree.
 */
async function check(s: Scenario) {
  const c = await w.imap(s.mailbox);
  const store = new Map<number, { seen: boolean; messageId?: string }>();
  for await (const m of c.fetch("1:*", { uid: true, flags: true, envelope: true })) store.set(m.uid, { seen: m.flags?.has("\\Seen") ?? false, messageId: m.envelope?.messageId });
  await c.logout();
  const records = await w.deps.state.voicemailState(s.linkId).loadItems();
  const copies = w.sim.outlook(s.userId).messages("inbox");
  const copiesByKey = new Map<string, typeof copies>();
  for (const m of copies) {
    const key = m.ext.get(SYNC_KEY_PROP.toLowerCase())?.value;
    expect(key, `copy ${m.id} carries a sync key`).toBeTruthy();
    copiesByKey.set(key!, [...(copiesByKey.get(key!) ?? []), m]);
  }
  for (const [uid, msg] of store) {
    const rec = records.find((r) => r.imapUid === uid);
    expect(rec, `message ${msg.messageId} has a record`).toBeDefined();
    const mine = copiesByKey.get(rec!.syncKey) ?? [];
    expect(mine.length, `copies of ${msg.messageId}`).toBe(1); // 0 lost, 0 duplicates
    expect(mine[0]!.id).toBe(rec!.graphId);
    expect(mine[0]!.isRead, `read state of ${msg.messageId}`).toBe(msg.seen);
    expect(rec!.agreedSeen).toBe(msg.seen);
    expect(rec!.pendingCreate).toBe(false);
  }
  const storeKeys = new Set([...store.keys()].map((uid) => records.find((r) => r.imapUid === uid)!.syncKey));
  for (const key of copiesByKey.keys()) expect(storeKeys.has(key), `copy ${key} has its message`).toBe(true);
  // Rows of messages deleted from Outlook stay as tombstones (detached from the store, no UID)
  // until their copy is purged, so a restore from Deleted Items is not deleted again (#17).
  // Every other row is one of the store's messages.
  const tombstones = records.filter((r) => r.detached === "graph");
  for (const t of tombstones) {
    expect(t.imapUid, `tombstone ${t.syncKey} has no store message`).toBeUndefined();
    expect(copiesByKey.has(t.syncKey), `tombstone ${t.syncKey} has no inbox copy`).toBe(false);
  }
  expect(records.length - tombstones.length).toBe(store.size);
  return { store: [...store.values()], copies };
}

const job = (linkId: string) => ({ env: w.env, kind: "voicemail" as const, linkId });

// The counting run: the same scenario, run to completion in a child process.
const counting = await scenario();
const phase1Writes = await countWrites(job(counting.linkId));
await check(counting);
await phase2(counting);
const phase2Writes = await countWrites(job(counting.linkId));
await check(counting);

describe.concurrent("voicemail: the worker dies at every write (SIGKILL, 8 actions in parallel)", () => {
  it("the counting run measured the writes of both phases", () => {
    // Three copies: pending row, create, row each; the cursors last.
    expect(phase1Writes.filter((n) => n === "exchange.create")).toHaveLength(3);
    expect(phase1Writes.at(-1)).toBe("state.saveCursors");
    // Read in Outlook -> STORE \Seen; deleted in Outlook -> EXPUNGE; heard -> PATCH; new -> create.
    for (const write of ["voice.setSeen", "voice.remove", "exchange.setRead", "exchange.create"]) expect(phase2Writes).toContain(write);
    expect(phase2Writes.at(-1)).toBe("state.saveCursors");
  });

  crashAtEveryWrite("voicemail", w.env, {
    title: "phase 1 (initial copy)", writes: phase1Writes,
    start: scenario,
    restart: async (s) => {
      await run(s.linkId);
      const after = await check(s);
      expect(after.copies).toHaveLength(3);
      const idle = await run(s.linkId);
      expect(Object.values(idle.actions).reduce((a, b) => a + b, 0)).toBe(0);
    },
  }, "loses and duplicates nothing");

  const deleted = new Map<string, string>();
  crashAtEveryWrite("voicemail", w.env, {
    title: "phase 2 (edits on both sides)", writes: phase2Writes,
    start: async () => {
      const s = await scenario();
      await run(s.linkId);
      await check(s);
      deleted.set(s.linkId, (await phase2(s)).deleted);
      return s;
    },
    restart: async (s) => {
      await run(s.linkId);
      const after = await check(s);
      expect(after.store).toHaveLength(3);
      expect(after.store.filter((m) => m.seen)).toHaveLength(2);
      // The message deleted in Outlook is gone from the store; its row may remain only as a
      // tombstone (no UID, detached), so a restore from Deleted Items is not deleted again (#17).
      const gone = (await w.deps.state.voicemailState(s.linkId).loadItems()).filter((r) => r.syncKey === deleted.get(s.linkId));
      for (const r of gone) expect({ imapUid: r.imapUid, detached: r.detached }).toEqual({ imapUid: undefined, detached: "graph" });
      const idle = await run(s.linkId);
      expect(Object.values(idle.actions).reduce((a, b) => a + b, 0)).toBe(0);
    },
  }, "loses and duplicates nothing");
});
