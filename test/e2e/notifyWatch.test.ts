/**
 * Push without a hook for the folders besides INBOX (issue #16 point 1, NOTIFY, RFC 5465):
 * Dovecot without the Lua push hook, the endpoint set to notify "idle", every timer off (no
 * poll, no reconcile). The profile syncs contacts and copies e-mail to the phone into the
 * store folder "Email". A card the phone saves in Contacts, and an e-mail copy heard on the
 * phone, reach Exchange only through the watch's NOTIFY STATUS responses -> the queue -> the
 * contacts / mail run. A card saved while nobody watched is caught up by the next watcher
 * (the folder's HIGHESTMODSEQ kept in the watch mark).
 *
 * Breaks seen red:
 * - notifyOtherFolders (src/imap/notify.ts) returning false at once (no NOTIFY: INBOX's IDLE
 *   alone) -> the first test (the card never reaches Exchange);
 * - the watch mark written without the folders (writeMark returning INBOX's mark alone) ->
 *   the second test (the card saved between two watches is never synced).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, type World } from "./world.js";
import { watchStoresEvenFunction, watchStoresOddFunction } from "../../functions/timers.js";

const MAILBOX = "7601";
let w: World;
let userId = "";
type Line = Record<string, unknown>;
const lines = () => ((w.log as { lines?: Line[] }).lines ?? []);
const fire = (f: typeof watchStoresEvenFunction) => (f.handler as (t: unknown, c: unknown) => Promise<void>)({}, {});
const byName = (name: string) => w.sim.people(userId).list().find((c) => c.props.displayName === name);
const card = (uid: string, fn: string) => `From: Avaya <mm@voice.test>\r\nSubject: ${fn}\r\nContent-Type: text/vcard; charset=utf-8\r\n\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nUID:${uid}\r\nFN:${fn}\r\nN:${fn.split(" ").reverse().join(";")};;;\r\nTEL;TYPE=WORK:+49 30 1111\r\nEND:VCARD\r\n`;
async function onStore(fn: (c: Awaited<ReturnType<World["imap"]>>) => Promise<unknown>) {
  const c = await w.imap(MAILBOX);
  try { await fn(c); } finally { await c.logout(); }
}
/** Watched once Dovecot lists the watch's connection. */
const watched = async () => (await w.dc.doveadm("who")).includes(MAILBOX);

beforeAll(async () => {
  w = await startWorld({
    users: [MAILBOX], timers: false, storePush: false, endpoint: { notify: "idle" }, env: { UMC_WATCH_HOLD_SECONDS: "20" },
    profiles: [{ id: "people", displayName: "Contacts and e-mail on the phone", contacts: { enabled: true }, emailToPhone: { enabled: true, storeFolder: "Email" } }],
  });
  ({ userId } = await w.link(MAILBOX, "notify@contoso.test", "people"));
  await w.queueDrained(60_000);
}, 90_000);
afterAll(async () => { await w?.stop(); });

describe("NOTIFY watches: the other folders' changes start their runs", () => {
  it("a card saved on the phone and an e-mail copy heard on the phone reach Exchange through the watch", async () => {
    // An e-mail copy first: its notification goes the Graph way (not the store's).
    w.sim.outlook(userId).receive({ subject: "heard on the phone", from: { name: "Ann Lee", address: "ann@contoso.test" }, body: { contentType: "text", content: "Hello" } });
    let uid = 0;
    await expect.poll(async () => { await onStore(async (c) => { await c.mailboxOpen("Email"); uid = (c.mailbox as { exists: number }).exists ? (await c.search({ all: true }, { uid: true }) as number[])[0] ?? 0 : 0; }); return uid; }, { timeout: 15_000 }).toBeGreaterThan(0);
    await w.queueDrained();

    const watcher = fire(watchStoresEvenFunction);
    await expect.poll(watched, { timeout: 15_000 }).toBe(true);
    await onStore((c) => c.append("Contacts", Buffer.from(card("notify-1", "Grace Hopper"))));
    await expect.poll(() => byName("Grace Hopper"), { timeout: 10_000 }).toBeTruthy();
    await onStore(async (c) => { await c.mailboxOpen("Email"); await c.messageFlagsAdd(String(uid), ["\\Seen"], { uid: true }); });
    await expect.poll(() => w.sim.outlook(userId).messages("inbox").find((m) => m.subject === "heard on the phone")?.isRead, { timeout: 10_000 }).toBe(true);
    const why = lines().filter((l) => l.event === "watcher.change").map((l) => String(l.why));
    expect(why).toContain("status Contacts");
    expect(why).toContain("status Email");
    await watcher;
  }, 60_000);

  it("a card saved while nobody watched is synced when the next watcher starts", async () => {
    await w.queueDrained();
    await expect.poll(watched, { timeout: 15_000 }).toBe(false);
    await onStore((c) => c.append("Contacts", Buffer.from(card("notify-2", "Alan Turing"))));
    await new Promise((r) => setTimeout(r, 1500));
    expect(byName("Alan Turing")).toBeUndefined(); // nothing else starts a run here
    const watcher = fire(watchStoresOddFunction);
    await expect.poll(() => byName("Alan Turing"), { timeout: 15_000 }).toBeTruthy();
    expect(lines().filter((l) => l.event === "watcher.change" && l.why === "changed-while-unwatched").at(-1)?.kinds).toEqual(["contacts"]);
    await watcher;
  }, 60_000);
});
