/**
 * Crash safety of the real executor: the worker "dies" right after its Nth write (a Graph
 * create or PATCH, an IMAP STORE/EXPUNGE, a state row), for every N, and is run again.
 * Afterwards every voice message is in Exchange exactly once with the same read state,
 * deletes have landed on both sides, and one more run changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, TENANT, ENDPOINT, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { openVoicemailPorts, type VoicemailRunPorts } from "../../src/app/voicemail.js";
import { syncVoicemail } from "../../src/sync/voicemailSync.js";
import { SYNC_KEY_PROP } from "../../src/graph/voicemail.js";

class Crash extends Error {}
const N_MAX = 14;
const mailboxes = Array.from({ length: N_MAX }, (_, i) => `c${i + 1}`);
let w: World;

beforeAll(async () => { w = await startWorld({ users: mailboxes, timers: false, quiet: true }); }, 60_000);
afterAll(async () => { await w?.stop(); });

/** Wraps the ports so the run throws right after write number `crashAfter`. */
function crashing(p: VoicemailRunPorts, crashAfter: number) {
  let writes = 0;
  const after = async <T>(r: Promise<T>) => { const v = await r; if (++writes === crashAfter) throw new Crash(`crash after write ${writes}`); return v; };
  return {
    voice: { ...p.voice, changes: p.voice.changes, syncKeys: p.voice.syncKeys, fetchSource: p.voice.fetchSource, setSeen: (u: number, s: boolean) => after(p.voice.setSeen(u, s)), remove: (u: number) => after(p.voice.remove(u)) },
    exchange: { ...p.exchange, create: (c: Parameters<typeof p.exchange.create>[0]) => after(p.exchange.create(c)), setRead: (id: string, r: boolean) => after(p.exchange.setRead(id, r)), remove: (id: string) => after(p.exchange.remove(id)) },
    state: { ...p.state, putItem: (i: Parameters<typeof p.state.putItem>[0]) => after(p.state.putItem(i)), deleteItem: (k: string) => after(p.state.deleteItem(k)), saveCursors: (c: Parameters<typeof p.state.saveCursors>[0]) => after(p.state.saveCursors(c)) },
  };
}

async function run(linkId: string, crashAfter?: number) {
  const link = (await w.deps.state.getLink(linkId))!;
  const ports = await openVoicemailPorts(w.deps, link);
  try {
    const wrapped = crashAfter ? crashing(ports, crashAfter) : ports;
    return await syncVoicemail({ ...ports, ...wrapped, log: w.deps.log, limits: { massDeleteMaxShare: 1 }, ids: { tenantId: TENANT, mailboxId: linkId } });
  } catch (e) {
    if (e instanceof Crash || (e as { cause?: unknown }).cause instanceof Crash) return undefined;
    throw e;
  } finally {
    await ports.voice.close();
  }
}

async function check(mailbox: string, userId: string) {
  const c = await w.imap(mailbox);
  const store: Array<{ uid: number; seen: boolean; messageId?: string }> = [];
  for await (const m of c.fetch("1:*", { uid: true, flags: true, envelope: true })) store.push({ uid: m.uid, seen: m.flags?.has("\\Seen") ?? false, messageId: m.envelope?.messageId });
  await c.logout();
  const copies = w.sim.outlook(userId).messages("inbox");
  const keys = copies.map((m) => m.ext.get(SYNC_KEY_PROP.toLowerCase())?.value);
  expect(new Set(keys).size).toBe(keys.length); // no duplicates
  expect(copies.length).toBe(store.length); // nothing lost, nothing extra
  expect(copies.map((m) => m.isRead).sort()).toEqual(store.map((s) => s.seen).sort());
  return { store, copies };
}

describe("crash after every write step", () => {
  for (let n = 1; n <= N_MAX; n++) {
    it(`converges without duplicates or loss when the worker dies after write ${n}`, async () => {
      const mailbox = `c${n}`;
      const user = w.sim.addUser(TENANT, { userPrincipalName: `${mailbox}@contoso.test` });
      const linkId = `crash-${n}`;
      // Paused: the queue worker leaves it alone; this test drives the executor itself.
      await w.deps.state.createLink({ linkId, tenantId: TENANT, endpointId: ENDPOINT, voiceMailbox: mailbox, userId: user.id, profileId: "default", state: "paused" });
      for (let i = 0; i < 3; i++) await w.dc.lda(mailbox, avayaVoiceMessage({ id: `${mailbox}-${i}` }));

      // Phase 1: initial copy, crash, rerun.
      await run(linkId, n);
      await run(linkId);
      const first = await check(mailbox, user.id);
      expect(first.copies).toHaveLength(3);

      // Phase 2: edits on both sides, crash, rerun.
      // Three different messages: read in Outlook, deleted in Outlook, heard on the phone.
      const items = (await w.deps.state.voicemailState(linkId).loadItems()).sort((a, b) => a.imapUid! - b.imapUid!);
      const outlook = w.sim.outlook(user.id);
      outlook.markRead(items[0]!.graphId!);
      outlook.delete(items[1]!.graphId!);
      const c = await w.imap(mailbox);
      await c.messageFlagsAdd(String(items[2]!.imapUid), ["\\Seen"], { uid: true });
      await c.logout();
      await w.dc.lda(mailbox, avayaVoiceMessage({ id: `${mailbox}-new` }));
      await run(linkId, n);
      await run(linkId);
      const second = await check(mailbox, user.id);
      expect(second.store).toHaveLength(3);
      expect(second.store.filter((s) => s.seen)).toHaveLength(2);

      // A further run finds nothing to do.
      const idle = await run(linkId);
      expect(Object.values(idle!.actions).reduce((a, b) => a + b, 0)).toBe(0);
    });
  }
});
