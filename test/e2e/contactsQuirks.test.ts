/**
 * Contacts as real phones and clients write them (issue 18), through the real trigger path:
 * a card APPENDed to the store's Contacts folder -> Dovecot push -> storeNotifications ->
 * queue -> worker -> Graph (the simulator, as strict as Graph on what it refuses).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, type World } from "./world.js";
import { parseVCard } from "../../src/formats/vcard.js";
import { storeItemText } from "../../src/formats/storeItem.js";
import type { ContactCursors, ContactRecord } from "../../src/sync/contactsSync.js";

let w: World;
let userId = "";
let linkId = "";
const MAILBOX = "4811";
const people = () => w.sim.people(userId);
const byName = (name: string) => people().list().find((c) => c.props.displayName === name);

async function withContacts<T>(fn: (c: Awaited<ReturnType<World["imap"]>>) => Promise<T>): Promise<T> {
  const c = await w.imap(MAILBOX);
  try {
    await c.mailboxOpen("Contacts");
    return await fn(c);
  } finally { await c.logout(); }
}
async function storeCards() {
  return withContacts(async (c) => {
    const out: Array<{ uid: number; text: string; fields: ReturnType<typeof parseVCard> }> = [];
    if (!(c.mailbox as { exists: number }).exists) return out;
    for await (const m of c.fetch("1:*", { uid: true, source: true })) {
      const text = await storeItemText(m.source!, "vcard");
      try { out.push({ uid: m.uid, text, fields: parseVCard(text) }); } catch { /* not one card */ }
    }
    return out;
  });
}
const message = (subject: string, body: string, contentType = "text/vcard; charset=utf-8") => `From: Phone <phone@voice.test>\r\nSubject: ${subject}\r\nContent-Type: ${contentType}\r\n\r\n${body}`;
const append = (text: string | Buffer) => withContacts(async (c) => (await c.append("Contacts", Buffer.isBuffer(text) ? text : Buffer.from(text)))!);
const records = () => w.deps.state.recordState<ContactRecord, ContactCursors>(linkId, "contacts").loadItems();
const linkKinds = async () => (await w.deps.state.getLink(linkId))!.kinds?.contacts;

beforeAll(async () => {
  w = await startWorld({ users: [MAILBOX], profiles: [{ id: "people", displayName: "Voice and contacts", contacts: { enabled: true } }] });
  ({ userId, linkId } = await w.link(MAILBOX, "erin@contoso.test", "people"));
  for (const end = Date.now() + 20_000; !(await linkKinds())?.lastSyncAt && Date.now() < end; ) await new Promise((r) => setTimeout(r, 200));
}, 60_000);
afterAll(async () => { await w?.stop(); });

describe("contacts: values Graph would refuse", () => {
  it("an impossible birthday: the contact reaches Exchange without it, flagged; the store keeps it; a year-less one is year 1604", async () => {
    // Break seen red: toGraphContact sending `${birthday}T00:00:00Z` unchecked -> the simulator
    // answers 400 like Graph, the contact is skipped whole and never reaches Exchange.
    await append(message("Feb 30", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bday-1\r\nFN:Leap Mistake\r\nTEL;TYPE=CELL:+49 171 555\r\nBDAY:2023-02-30\r\nEND:VCARD\r\n"));
    await append(message("No year", "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:bday-2\r\nFN:Ada Noyear\r\nBDAY:--0415\r\nEND:VCARD\r\n"));
    await expect.poll(() => byName("Leap Mistake") && byName("Ada Noyear"), { timeout: 15_000 }).toBeTruthy();
    expect(byName("Leap Mistake")!.props).toMatchObject({ mobilePhone: "+49 171 555", birthday: null });
    expect(byName("Ada Noyear")!.props.birthday).toBe("1604-04-15T00:00:00Z");
    const rec = (await records()).find((r) => r.syncKey === "bday-1")!;
    expect(rec.skipped).toBeUndefined();
    expect(rec.flags).toEqual([{ field: "birthday", message: expect.stringContaining("2023-02-30") }]);
    // An Outlook edit comes back with the store's birthday intact (carried in the extras).
    people().update(byName("Leap Mistake")!.id, { jobTitle: "Calendar skeptic" });
    await expect.poll(async () => (await storeCards()).find((c) => c.fields.uid === "bday-1")?.fields.jobTitle, { timeout: 15_000 }).toBe("Calendar skeptic");
    const back = (await storeCards()).find((c) => c.fields.uid === "bday-1")!;
    expect(back.text).toContain("BDAY:20230230");
    people().update(byName("Ada Noyear")!.id, { jobTitle: "Countess" });
    await expect.poll(async () => (await storeCards()).find((c) => c.fields.uid === "bday-2")?.text, { timeout: 15_000 }).toContain("BDAY:--0415");
  });
});
