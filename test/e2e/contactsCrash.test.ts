/**
 * Crash safety of the contacts executor: the worker "dies" right after its Nth write (an IMAP
 * APPEND or EXPUNGE, a Graph create / PATCH / DELETE, a state row, a conflict record), for
 * every N, in an initial sync and in a round of edits on both sides, and is run again.
 * Afterwards both sides hold the same contacts exactly once, and one more run changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, TENANT, ENDPOINT, type World } from "./world.js";
import { openContactsPorts, type ContactsRunPorts } from "../../src/app/contacts.js";
import { syncContacts } from "../../src/sync/contactsSync.js";
import { parseVCard } from "../../src/formats/vcard.js";
import { storeItemText } from "../../src/formats/storeItem.js";

class Crash extends Error {}
const N_MAX = 24;
const mailboxes = Array.from({ length: N_MAX }, (_, i) => `k${i + 1}`);
let w: World;
const PROFILE = { id: "people", displayName: "Contacts", contacts: { enabled: true } };

beforeAll(async () => { w = await startWorld({ users: mailboxes, timers: false, quiet: true, profiles: [PROFILE] }); }, 60_000);
afterAll(async () => { await w?.stop(); });

function crashing(p: ContactsRunPorts, crashAfter: number): ContactsRunPorts {
  let writes = 0;
  const after = async <T>(r: Promise<T>) => { const v = await r; if (++writes === crashAfter) throw new Crash(`crash after write ${writes}`); return v; };
  return {
    ...p,
    store: { ...p.store, changes: p.store.changes, fetchSources: p.store.fetchSources, append: (s: Buffer) => after(p.store.append(s)), remove: (u: number) => after(p.store.remove(u)) },
    exchange: { ...p.exchange, create: (k, f) => after(p.exchange.create(k, f)), update: (id, f) => after(p.exchange.update(id, f)), remove: (id) => after(p.exchange.remove(id)) },
    state: { ...p.state, putItem: (i) => after(p.state.putItem(i)), deleteItem: (k) => after(p.state.deleteItem(k)), saveCursors: (c) => after(p.state.saveCursors(c)) },
    putConflict: (c) => after(p.putConflict(c)),
  };
}

async function run(linkId: string, crashAfter?: number) {
  const link = (await w.deps.state.getLink(linkId))!;
  const ports = await openContactsPorts(w.deps, link, (await w.deps.directory()).profile("people"));
  try {
    const p = crashAfter ? crashing(ports, crashAfter) : ports;
    // One action at a time, so write N is the same step on every run.
    return await syncContacts({ ...p, parallel: 1, log: w.deps.log, limits: { massDeleteMaxShare: 1 }, ids: { tenantId: TENANT, mailboxId: linkId } });
  } catch (e) {
    if (e instanceof Crash || (e as { cause?: unknown }).cause instanceof Crash) return undefined;
    throw e;
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

describe("contacts: crash after every write step", () => {
  for (let n = 1; n <= N_MAX; n++) {
    it(`converges without duplicates or loss when the worker dies after write ${n}`, async () => {
      const mailbox = `k${n}`;
      const user = w.sim.addUser(TENANT, { userPrincipalName: `${mailbox}@contoso.test` });
      const linkId = `kcrash-${n}`;
      await w.deps.state.createLink({ linkId, tenantId: TENANT, endpointId: ENDPOINT, voiceMailbox: mailbox, userId: user.id, profileId: "people", state: "paused" });
      await run(linkId); // creates the store folder
      await appendCard(mailbox, card("s1", "Store One"));
      await appendCard(mailbox, card("s2", "Store Two"));
      const people = w.sim.people(user.id);
      people.add({ displayName: "Graph One" });
      people.add({ displayName: "Graph Two" });

      // Phase 1: initial sync both ways, crash, rerun.
      await run(linkId, n);
      await run(linkId);
      const first = await check(mailbox, user.id);
      expect(first.store).toHaveLength(4);
      // A quiet run moves the store cursor past the cards phase 1 wrote (the steady state):
      // from here on they are "old" and only the records know them.
      await run(linkId);

      // Phase 2: edit/edit conflict, one-sided edits, deletes on both sides, a new card.
      const s1 = first.store.find((s) => s.name === "Store One")!;
      await appendCard(mailbox, card("s1", "Store One", "Store title")); await expunge(mailbox, s1.uid);
      const byName = (x: string) => people.list().find((c) => c.props.displayName === x)!;
      await new Promise((r) => setTimeout(r, 5));
      people.update(byName("Store One").id, { jobTitle: "Outlook title" }); // later edit: wins
      people.update(byName("Graph One").id, { jobTitle: "Edited in Outlook" });
      await expunge(mailbox, first.store.find((s) => s.name === "Graph Two")!.uid);
      people.remove(byName("Store Two").id);
      await appendCard(mailbox, card("s3", "Store Three"));
      await run(linkId, n);
      await run(linkId);
      const second = await check(mailbox, user.id);
      expect(second.store.map((s) => s.name).sort()).toEqual(["Graph One", "Store One", "Store Three"]);
      expect(second.store.find((s) => s.name === "Store One")!.title).toBe("Outlook title");
      expect((await w.deps.state.listConflicts(linkId)).length).toBeGreaterThanOrEqual(1);

      // Settled: a further run changes nothing.
      const again = await run(linkId);
      expect(Object.values(again!.actions).reduce((a, b) => a + b, 0)).toBe(0);
    });
  }
});
