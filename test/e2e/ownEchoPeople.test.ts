/**
 * Own-echo suppression for contacts and e-mail on the phone (issue #19, point 2), as
 * test/e2e/ownEcho.test.ts shows it for voice messages: through the real paths with every
 * safety-net timer off. A contacts or e-mail run announces its writes before it makes them
 * (src/sync/contactsSync.ts contactEchoes, src/sync/mailSync.ts mailEchoes ->
 * src/state/leases.ts expectEchoes, a row per link and kind); Dovecot's Lua push and Graph's
 * notifications report them back, and the webhooks take them as the connector's own
 * (src/app/webhooks.ts ownEcho, ownGraphEcho) and start no run.
 *
 * Breaks seen red:
 *  - ownEcho() in src/app/webhooks.ts returning false -> "one contacts run per Outlook-side
 *    change" (2 runs: the APPEND's and the EXPUNGE's pushes start another) and "one e-mail run
 *    per Outlook-side read" (2 runs);
 *  - ownGraphEcho() returning false for contacts -> "a phone-side edit ... Graph's notification
 *    of the connector's PATCH is taken" (the announced write never taken);
 *  - contactEchoes() announcing nothing -> the first two contacts tests;
 *  - knownContacts() answering false, or knownGraphIds (src/state/items.ts) finding no index row ->
 *    "a card the phone adds reaches Exchange in one run" (2 runs);
 *  - mailEchoes() announcing nothing -> "one e-mail run per Outlook-side read" (2 runs).
 * (The second contacts test builds on the first: when the first fails, it fails too.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runsOf, SAFETY_NET_TIMERS, settle, startWorld, type World } from "./world.js";
import { keyOf } from "../../src/state/tables.js";
import { parseVCard } from "../../src/formats/vcard.js";
import { storeItemText } from "../../src/formats/storeItem.js";

let w: World;
const PEOPLE = "4821";
const MAIL = "4822";
let peopleUser = "";
let peopleLink = "";
let mailUser = "";
let mailLink = "";
const runs = runsOf;
/** Every run queued has run, and a push or notification still on its way has landed and run too. */
const people = () => w.sim.people(peopleUser);
const echoRow = async (linkId: string, kind: string) => {
  const c = await w.deps.state.tableClients.client("runs");
  return c.getEntity<{ writes?: string; graph?: string }>("echo", keyOf(`${linkId}|${kind}`)).catch(() => undefined);
};

async function onStore<T>(mailbox: string, folder: string, fn: (c: Awaited<ReturnType<World["imap"]>>) => Promise<T>): Promise<T> {
  const c = await w.imap(mailbox);
  try {
    await c.mailboxOpen(folder);
    return await fn(c);
  } finally { await c.logout(); }
}
const cards = () => onStore(PEOPLE, "Contacts", async (c) => {
  const out: Array<{ uid: number; name?: string; text: string }> = [];
  if (!(c.mailbox as { exists: number }).exists) return out;
  for await (const m of c.fetch("1:*", { uid: true, source: true })) {
    const text = await storeItemText(m.source!, "vcard");
    out.push({ uid: m.uid, name: parseVCard(text).displayName, text });
  }
  return out;
});
const mailSeen = () => onStore(MAIL, "Email", async (c) => {
  const out: Record<number, boolean> = {};
  if (!(c.mailbox as { exists: number }).exists) return out;
  for await (const m of c.fetch("1:*", { uid: true, flags: true })) out[m.uid] = m.flags?.has("\\Seen") ?? false;
  return out;
});

beforeAll(async () => {
  w = await startWorld({
    users: [PEOPLE, MAIL], disabledFunctions: SAFETY_NET_TIMERS,
    profiles: [
      { id: "people", displayName: "Contacts", contacts: { enabled: true } },
      { id: "e2p", displayName: "E-mail on the phone", emailToPhone: { enabled: true, storeFolder: "Email" } },
    ],
  });
  ({ userId: peopleUser, linkId: peopleLink } = await w.link(PEOPLE, "erin@contoso.test", "people"));
  ({ userId: mailUser, linkId: mailLink } = await w.link(MAIL, "finn@contoso.test", "e2p"));
  for (const until = Date.now() + 30_000; ;) {
    const [p, m] = await Promise.all([w.deps.state.getLink(peopleLink), w.deps.state.getLink(mailLink)]);
    if (p?.kinds?.contacts?.lastSyncAt && m?.kinds?.mail?.lastSyncAt) break;
    if (Date.now() > until) throw new Error("the first contacts and e-mail runs did not happen");
    await new Promise((r) => setTimeout(r, 200));
  }
  await settle(w, 2000);
}, 90_000);
afterAll(async () => { await w?.stop(); });

describe("own-echo suppression: contacts", () => {
  it("one contacts run per Outlook-side change: the store's pushes of the connector's APPEND and EXPUNGE start none", async () => {
    // Created in Outlook: one APPEND on the store.
    let before = runs("contacts", peopleLink);
    people().add({ displayName: "Hedy Lamarr", givenName: "Hedy", surname: "Lamarr", mobilePhone: "+1 555 0100" });
    await expect.poll(async () => (await cards()).map((c) => c.name), { timeout: 10_000 }).toEqual(["Hedy Lamarr"]);
    await settle(w, 2000);
    expect(runs("contacts", peopleLink) - before).toBe(1);
    // Edited in Outlook: the new card APPENDed, the old one STORE \Deleted and EXPUNGEd.
    before = runs("contacts", peopleLink);
    const id = people().list().find((c) => c.props.displayName === "Hedy Lamarr")!.id;
    people().update(id, { jobTitle: "Inventor" });
    await expect.poll(async () => (await cards()).map((c) => /TITLE:Inventor/.test(c.text)), { timeout: 10_000 }).toEqual([true]);
    await settle(w, 2000);
    expect(runs("contacts", peopleLink) - before).toBe(1);
    // The announced writes were taken, one per push.
    expect(JSON.parse((await echoRow(peopleLink, "contacts"))?.writes ?? "null")).toEqual([]);
  });

  it("a phone-side edit reaches Exchange, and Graph's notification of the connector's PATCH is taken as its echo", async () => {
    const [card] = await cards();
    const edited = card!.text.replace(/TITLE:Inventor/, "TITLE:Actress and inventor");
    expect(edited).not.toBe(card!.text);
    // The phone replaces the card: APPEND of the new one, then the old one deleted.
    await onStore(PEOPLE, "Contacts", async (c) => {
      await c.append("Contacts", Buffer.from(`Subject: Hedy Lamarr\r\nContent-Type: text/vcard; charset=utf-8\r\n\r\n${edited}`));
      await c.messageDelete(String(card!.uid), { uid: true });
    });
    await expect.poll(() => people().list().map((c) => c.props.jobTitle), { timeout: 10_000 }).toEqual(["Actress and inventor"]);
    // The run announced the PATCH ("updated"); Graph's notification of it took it.
    await expect.poll(async () => (await echoRow(peopleLink, "contacts"))?.graph, { timeout: 15_000 }).toBe("[]");
    await settle(w, 2000);
  });

  it("a card the phone adds reaches Exchange in one run: Graph's \"created\" of the connector's own create starts none", async () => {
    const before = runs("contacts", peopleLink);
    await onStore(PEOPLE, "Contacts", (c) => c.append("Contacts", Buffer.from("Subject: Ada Lovelace\r\nContent-Type: text/vcard; charset=utf-8\r\n\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nUID:phone-ada\r\nFN:Ada Lovelace\r\nN:Lovelace;Ada;;;\r\nTEL;TYPE=CELL:+44 20 7946 0001\r\nEND:VCARD\r\n")));
    await expect.poll(() => people().list().some((c) => c.props.displayName === "Ada Lovelace"), { timeout: 10_000 }).toBe(true);
    await settle(w, 2000);
    // The phone's APPEND started one run; the notification of the contact it created found its record.
    expect(runs("contacts", peopleLink) - before).toBe(1);
  });
});

describe("own-echo suppression: e-mail on the phone", () => {
  it("one e-mail run per Outlook-side read: the store's push of the connector's STORE \\Seen starts none", async () => {
    const o = w.sim.outlook(mailUser);
    o.receive({ subject: "Budget", from: { name: "Gil", address: "gil@contoso.test" }, body: { contentType: "text", content: "Numbers attached." } });
    await expect.poll(async () => Object.values(await mailSeen()), { timeout: 15_000 }).toEqual([false]);
    await settle(w, 2000);
    const before = runs("mail", mailLink);
    o.markRead(o.messages("inbox").find((m) => m.subject === "Budget")!.id, true);
    await expect.poll(async () => Object.values(await mailSeen()), { timeout: 10_000 }).toEqual([true]);
    await settle(w, 2000);
    expect(runs("mail", mailLink) - before).toBe(1);
  });
});
