/**
 * Moves and retention are not deletes (issue 17, point 2), end to end through the real
 * triggers: Outlook actions in the simulator -> change notification -> graphNotifications ->
 * queue -> syncWorker; store expunges -> Lua push -> storeNotifications; `umconnect resync`
 * (admin) for the full comparison that refreshes moved copies' read state.
 * Immutable ids (Prefer: IdType="ImmutableId") keep a moved copy's id
 * (https://learn.microsoft.com/en-us/graph/outlook-immutable-id).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { resync } from "../../src/admin/links.js";

let w: World;
const users: Record<string, { linkId: string; userId: string }> = {};
const folder = (mb: string, f: string) => w.sim.outlook(users[mb]!.userId).messages(f);
const outlook = (mb: string) => w.sim.outlook(users[mb]!.userId);
const store = async (mb: string) => {
  const c = await w.imap(mb);
  try {
    const out: Record<string, boolean> = {};
    for await (const m of c.fetch("1:*", { uid: true, flags: true, envelope: true })) out[m.envelope?.messageId ?? String(m.uid)] = m.flags?.has("\\Seen") ?? false;
    return out;
  } catch { return {}; } finally { await c.logout(); }
};
const records = (mb: string) => w.deps.state.voicemailState(users[mb]!.linkId).loadItems();
const link = (mb: string) => w.deps.state.getLink(users[mb]!.linkId);
/** Waits until the link finished a run that started after now (so "nothing happened" is checked after a run). */
async function nextRun(mb: string) {
  const before = (await link(mb))?.lastSyncAt ?? "";
  await expect.poll(async () => ((await link(mb))?.lastSyncAt ?? "") > before, { timeout: 15_000 }).toBe(true);
}

beforeAll(async () => {
  w = await startWorld({
    users: ["4711", "4712", "4713", "4714"],
    profiles: [
      { id: "mailcopy", displayName: "Voice and e-mail, loop-protected", copy: { email: true }, loopPreventionDomain: "voice.example.test" },
      { id: "keep", displayName: "Deleted Items is no delete; archive mailbox keeps", outlookDelete: { trigger: "hardDelete", goneFromMailbox: "keep" } },
      { id: "aging", displayName: "Store ages out after 30 days", massDelete: { agingMinDays: 30 } },
    ],
  });
  users["4711"] = await w.link("4711", "alice@contoso.test");
  users["4712"] = await w.link("4712", "bob@contoso.test", "keep");
  users["4713"] = await w.link("4713", "carol@contoso.test", "aging");
  users["4714"] = await w.link("4714", "dave@contoso.test", "mailcopy");
}, 60_000);
afterAll(async () => { await w?.stop(); });

const mail = (id: string, headers: string[]) => Buffer.from([`From: Someone <someone@example.test>`, `To: 4714@pbx.example.test`, `Subject: mail ${id}`, `Date: ${new Date().toUTCString()}`, `Message-ID: <${id}@example.test>`, ...headers, "Content-Type: text/plain", "", `mail ${id}`, ""].join("\r\n"));

describe("loop prevention (issue 17, point 4)", () => {
  it("mail to or from the voice system's own domain in From, To, Cc or Reply-To is never copied back", async () => {
    await w.dc.lda("4714", mail("from", ["Sender: x@example.test"]).toString().replace("From: Someone <someone@example.test>", "From: VM <vm@voice.example.test>"));
    await w.dc.lda("4714", mail("to", []).toString().replace("To: 4714@pbx.example.test", "To: 4714@Voice.Example.Test"));
    await w.dc.lda("4714", mail("cc", ["Cc: Echo <echo@voice.example.test>"]));
    await w.dc.lda("4714", mail("replyto", ["Reply-To: back@voice.example.test"]));
    await w.dc.lda("4714", mail("fine", []));
    await expect.poll(async () => (await w.deps.state.voicemailState(users["4714"]!.linkId).loadItems()).filter((r) => r.skipped?.code === "LOOP_PREVENTED").length, { timeout: 15_000 }).toBe(4);
    await expect.poll(() => folder("4714", "inbox").map((m) => m.subject), { timeout: 15_000 }).toEqual(["mail fine"]);
  }, 30_000);
});

describe("moves and retention are not deletes", () => {
  it("a copy moved to another folder (Archive) keeps its store original, and read state follows both ways", async () => {
    await w.dc.lda("4711", avayaVoiceMessage({ id: "mv-1", caller: "Mover One" }));
    await w.dc.lda("4711", avayaVoiceMessage({ id: "mv-2", caller: "Mover Two" }));
    await expect.poll(() => folder("4711", "inbox").length, { timeout: 15_000 }).toBe(2);
    const moved = folder("4711", "inbox").find((m) => m.subject.includes("Mover One"))!;
    outlook("4711").move(moved.id, "archive");
    await expect.poll(async () => (await records("4711")).find((r) => r.graphId === moved.id)?.graphElsewhere, { timeout: 15_000 }).toBe(true);
    expect(Object.keys(await store("4711"))).toHaveLength(2);
    // Heard on the phone: the moved copy (same immutable id) is marked read where it is now.
    const c = await w.imap("4711");
    await c.messageFlagsAdd("1", ["\\Seen"], { uid: true });
    await c.logout();
    await expect.poll(() => folder("4711", "archive")[0]?.isRead, { timeout: 15_000 }).toBe(true);
    // Unread in Outlook's Archive folder: no folder notification covers it; the full comparison does.
    outlook("4711").markRead(moved.id, false);
    await resync(w.deps, users["4711"]!.linkId);
    await expect.poll(async () => (await store("4711"))["<mv-1@pbx.example.test>"], { timeout: 15_000 }).toBe(false);
    // Moved back into the voicemail folder: still one copy, still linked.
    outlook("4711").move(moved.id, "inbox");
    await expect.poll(async () => (await records("4711")).find((r) => r.graphId === moved.id)?.graphElsewhere, { timeout: 15_000 }).toBeUndefined();
    expect(folder("4711", "inbox")).toHaveLength(2);
    expect(Object.keys(await store("4711"))).toHaveLength(2);
  }, 60_000);

  it("Shift+Delete (Recoverable Items) deletes on the store; Deleted Items then a restore is not deleted again", async () => {
    const [a, b] = folder("4711", "inbox");
    outlook("4711").move(a!.id, "recoverableitemsdeletions");
    await expect.poll(async () => Object.keys(await store("4711")).length, { timeout: 15_000 }).toBe(1);
    outlook("4711").delete(b!.id);
    await expect.poll(async () => Object.keys(await store("4711")).length, { timeout: 15_000 }).toBe(0);
    // Restored from Deleted Items: its store original is gone, but it stays in Outlook.
    outlook("4711").move(b!.id, "inbox");
    await nextRun("4711");
    await resync(w.deps, users["4711"]!.linkId);
    await nextRun("4711");
    expect(folder("4711", "inbox").map((m) => m.id)).toEqual([b!.id]);
    expect((await records("4711")).find((r) => r.graphId === b!.id)?.detached).toBe("graph");
  }, 60_000);

  it("with trigger hardDelete, Deleted Items keeps the store original and a restore stays in step", async () => {
    await w.dc.lda("4712", avayaVoiceMessage({ id: "keep-1" }));
    await expect.poll(() => folder("4712", "inbox").length, { timeout: 15_000 }).toBe(1);
    const m = folder("4712", "inbox")[0]!;
    outlook("4712").delete(m.id);
    await expect.poll(async () => (await records("4712")).find((r) => r.graphId === m.id)?.graphElsewhere, { timeout: 15_000 }).toBe(true);
    expect(Object.keys(await store("4712"))).toHaveLength(1);
    outlook("4712").move(m.id, "inbox");
    outlook("4712").markRead(m.id);
    await expect.poll(async () => (await store("4712"))["<keep-1@pbx.example.test>"], { timeout: 15_000 }).toBe(true);
    expect(folder("4712", "inbox")).toHaveLength(1);
    // Gone from the mailbox (the archive mailbox, per profile): the store keeps it.
    outlook("4712").hardDelete(m.id);
    await expect.poll(async () => (await records("4712"))[0]?.detached, { timeout: 15_000 }).toBe("imap");
    expect(Object.keys(await store("4712"))).toHaveLength(1);
  }, 60_000);

  it("the guard lets the store's aging of old messages through and refuses a wipe, saying which it saw", async () => {
    const old = Date.now() - 60 * 86_400_000;
    for (let i = 0; i < 8; i++) await w.dc.lda("4713", avayaVoiceMessage({ id: `old-${i}`, date: new Date(old + i * 60_000) }));
    for (let i = 0; i < 4; i++) await w.dc.lda("4713", avayaVoiceMessage({ id: `new-${i}`, date: new Date(Date.now() - i * 60_000) }));
    await expect.poll(() => folder("4713", "inbox").length, { timeout: 20_000 }).toBe(12);
    await expect.poll(async () => (await records("4713")).filter((r) => r.graphId && !r.pendingCreate).length, { timeout: 15_000 }).toBe(12);
    const c = await w.imap("4713");
    await c.messageDelete("1:8", { uid: true }); // the store's retention expires the 8 oldest at once
    await expect.poll(() => folder("4713", "inbox").length, { timeout: 15_000 }).toBe(4);
    expect((await link("4713"))?.lastError).toBeUndefined();
    await c.messageDelete("1:*", { uid: true }); // a wipe
    await c.logout();
    await expect.poll(async () => (await link("4713"))?.lastError?.code, { timeout: 15_000 }).toBe("MASS_DELETE_REFUSED");
    expect((await link("4713"))?.lastError?.message).toMatch(/wipe/);
    expect(folder("4713", "inbox")).toHaveLength(4);
  }, 90_000);
});
