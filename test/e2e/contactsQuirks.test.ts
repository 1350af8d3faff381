/**
 * Contacts as real phones and clients write them (issue 18), through the real trigger path:
 * a card APPENDed to the store's Contacts folder -> Dovecot push -> storeNotifications ->
 * queue -> worker -> Graph (the simulator, as strict as Graph on what it refuses).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENDPOINT, startWorld, TENANT, type World } from "./world.js";
import { enqueueLinkKinds } from "../../src/app/schedule.js";
import { parseVCard } from "../../src/formats/vcard.js";
import { storeItemText } from "../../src/formats/storeItem.js";
import type { ContactCursors, ContactRecord } from "../../src/sync/contactsSync.js";

let w: World;
let userId = "";
let linkId = "";
const MAILBOX = "4811";
/** A mailbox whose first sync copies many Exchange contacts onto the store (photos listed, not asked for one by one). */
const MANY = "4812";
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
  w = await startWorld({ users: [MAILBOX, MANY], profiles: [{ id: "people", displayName: "Voice and contacts", contacts: { enabled: true } }] });
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

describe("contacts: cards as phones write them", () => {
  it("a vCard 2.1 card (quoted-printable, CHARSET, BASE64 photo) deposited on the store reaches Exchange decoded, and comes back as valid 4.0", async () => {
    // Break seen red: readCardLines refusing VERSION:2.1 (main) -> the card is skipped as VCARD_MALFORMED and never reaches Exchange.
    const android = "BEGIN:VCARD\r\nVERSION:2.1\r\nUID:android-21\r\nN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Nu=C3=B1ez;Jos=C3=A9;;;\r\nFN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Jos=C3=A9 Nu=C3=B1ez\r\nTEL;CELL:+34 600 555 014\r\nTEL;WORK;FAX:+34 91 555 0199\r\nNOTE;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Lleva el equipo=0A=\r\nPrefiere mensajes\r\nPHOTO;ENCODING=BASE64;JPEG:/9j/4AAQSkZJRgABAQEASABIAAD/2w==\r\n\r\nEND:VCARD\r\n";
    await append(message("Jose", android, "text/x-vcard; charset=utf-8"));
    await expect.poll(() => byName("José Nuñez"), { timeout: 15_000 }).toBeTruthy();
    expect(byName("José Nuñez")!.props).toMatchObject({ givenName: "José", surname: "Nuñez", mobilePhone: "+34 600 555 014", businessPhones: [], personalNotes: "Lleva el equipo\nPrefiere mensajes" });
    // An Outlook edit rewrites the card as 4.0: the fax keeps its type, the photo comes back as a data: URI.
    people().update(byName("José Nuñez")!.id, { jobTitle: "Jefe" });
    await expect.poll(async () => (await storeCards()).find((c) => c.fields.uid === "android-21")?.fields.jobTitle, { timeout: 15_000 }).toBe("Jefe");
    const text = (await storeCards()).find((c) => c.fields.uid === "android-21")!.text;
    expect(text).toContain("VERSION:4.0");
    expect(text).not.toMatch(/ENCODING=|CHARSET=|VERSION:2\.1/);
    expect(text).toContain("TEL;TYPE=work,fax:+34 91 555 0199");
    expect(text.replace(/\r\n /g, "")).toContain("PHOTO:data:image/jpeg;base64,/9j/4AAQSkZJRgABAQEASABIAAD/2w==");
  });

  it("a message with several cards: each becomes its own contact, a broken one is refused with its reason", async () => {
    // Break seen red: splitMultiCard returning the items unchanged -> parseVCard refuses "3 vCards where one was expected" and none arrives.
    const book = ["BEGIN:VCARD\r\nVERSION:3.0\r\nUID:book-1\r\nFN:Book One\r\nEMAIL:one@example.test\r\nEND:VCARD", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:book-2\r\nFN:Book Two\r\nEMAIL:two@example.test\r\nEND:VCARD", "BEGIN:VCARD\r\nVERSION:7.0\r\nFN:Book Broken\r\nEND:VCARD"].join("\r\n") + "\r\n";
    const before = (await records()).filter((r) => r.skipped).length;
    await append(message("Address book", book));
    await expect.poll(() => Boolean(byName("Book One") && byName("Book Two")), { timeout: 15_000 }).toBe(true);
    const skipped = (await records()).filter((r) => r.skipped);
    expect(skipped.length).toBe(before + 1);
    expect(skipped.at(-1)!.skipped!.message).toMatch(/version 7\.0/);
    // On the store: one message per card now, the address book message gone.
    const cards = await storeCards();
    expect(cards.filter((c) => ["book-1", "book-2"].includes(c.fields.uid ?? "")).length).toBe(2);
    expect(cards.some((c) => c.text.includes("Book One") && c.text.includes("Book Two"))).toBe(false);
  });
});

describe("contacts: photos both ways (the Exchange contact photo)", () => {
  // A real JPEG header (SOI + JFIF APP0) and some bytes: the simulator, like Exchange, takes images only.
  const jpeg = (seed: number) => Buffer.concat([Buffer.from("ffd8ffe000104a46494600010100000100010000", "hex"), Buffer.alloc(2000, seed), Buffer.from("ffd9", "hex")]);

  it("a photo on the store reaches the Exchange contact photo; a store-side photo edit replaces it", async () => {
    // Break seen red: pushPhoto not called -> the simulator's contact has no photo.
    await append(message("Pic", `BEGIN:VCARD\r\nVERSION:3.0\r\nUID:photo-1\r\nFN:Photo Person\r\nPHOTO;ENCODING=b;TYPE=JPEG:${jpeg(1).toString("base64")}\r\nEND:VCARD\r\n`));
    await expect.poll(() => byName("Photo Person")?.photo?.bytes.equals(jpeg(1)), { timeout: 15_000 }).toBe(true);
    const old = (await storeCards()).find((c) => c.fields.uid === "photo-1")!;
    await append(message("Pic", `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:photo-1\r\nFN:Photo Person\r\nPHOTO:data:image/jpeg;base64,${jpeg(2).toString("base64")}\r\nEND:VCARD\r\n`));
    await withContacts(async (c) => { await c.messageDelete(String(old.uid), { uid: true }); });
    await expect.poll(() => byName("Photo Person")?.photo?.bytes.equals(jpeg(2)), { timeout: 15_000 }).toBe(true);
    expect((await records()).find((r) => r.syncKey === "photo-1")?.flags).toBeUndefined();
  });

  it("a photo set in Outlook (nothing else changed) reaches the store's card", async () => {
    // Break seen red: photoChange comparing the recorded photo with itself (no GET) -> a photo-only edit is never seen.
    people().setPhoto(byName("Photo Person")!.id, jpeg(3));
    await expect.poll(async () => (await storeCards()).find((c) => c.fields.uid === "photo-1")?.text.replace(/\r\n /g, ""), { timeout: 15_000 }).toContain(`PHOTO:data:image/jpeg;base64,${jpeg(3).toString("base64")}`);
    expect((await storeCards()).filter((c) => c.fields.uid === "photo-1")).toHaveLength(1);
  });

  it("a photo Exchange cannot take stays on the store, whole, and the item is flagged", async () => {
    const notImage = Buffer.from("this is not an image at all").toString("base64");
    await append(message("Bad pic", `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:photo-2\r\nFN:Odd Photo\r\nPHOTO:data:image/jpeg;base64,${notImage}\r\nEND:VCARD\r\n`));
    await expect.poll(() => byName("Odd Photo"), { timeout: 15_000 }).toBeTruthy();
    expect(byName("Odd Photo")!.photo).toBeUndefined();
    await expect.poll(async () => (await records()).find((r) => r.syncKey === "photo-2")?.flags?.[0]?.field, { timeout: 10_000 }).toBe("photo");
    people().update(byName("Odd Photo")!.id, { jobTitle: "Edited" });
    await expect.poll(async () => (await storeCards()).find((c) => c.fields.uid === "photo-2")?.fields.jobTitle, { timeout: 15_000 }).toBe("Edited");
    expect((await storeCards()).find((c) => c.fields.uid === "photo-2")!.text.replace(/\r\n /g, "")).toContain(notImage);
  });

  it("a first sync of many Exchange contacts asks only for the photos there are (PidLidHasPicture listed), and they reach the cards", async () => {
    // Break seen red: withExchangePhoto asking for every photo -> 30 photo GETs, not 3.
    const user = w.sim.addUser(TENANT, { userPrincipalName: "many@contoso.test" });
    const book = w.sim.people(user.id);
    for (let i = 0; i < 30; i++) {
      const c = book.add({ displayName: `Many ${i}`, givenName: "Many", surname: String(i), businessPhones: [`+44 20 7946 ${String(1000 + i)}`] });
      if (i % 10 === 3) book.setPhoto(c.id, jpeg(40 + i));
    }
    const photoGets = () => w.sim.stats.byRoute.get("GET /users/{id}/contacts/{id}/photo/$value") ?? 0;
    const before = photoGets();
    const linkId2 = `L-${MANY}`;
    await w.deps.state.createLink({ linkId: linkId2, tenantId: TENANT, endpointId: ENDPOINT, voiceMailbox: MANY, userId: user.id, upn: "many@contoso.test", profileId: "people", state: "enabled" });
    await enqueueLinkKinds(w.deps, { linkId: linkId2, profileId: "people" }, "admin");
    await expect.poll(async () => (await w.deps.state.getLink(linkId2))?.kinds?.contacts?.lastSyncAt, { timeout: 30_000 }).toBeTruthy();
    const c = await w.imap(MANY);
    const photos: string[] = [];
    let cards = 0;
    try {
      await c.mailboxOpen("Contacts");
      for await (const m of c.fetch("1:*", { source: true })) {
        cards++;
        const text = (await storeItemText(m.source!, "vcard")).replace(/\r\n /g, "");
        if (/^PHOTO[:;]/m.test(text)) photos.push(parseVCard(text).displayName ?? "");
      }
    } finally { await c.logout(); }
    expect(cards).toBe(30);
    expect(photos.sort()).toEqual(["Many 13", "Many 23", "Many 3"]);
    expect(photoGets() - before).toBe(3);
  });
});
