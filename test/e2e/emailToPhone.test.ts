/**
 * E-mail on the phone end to end through the real trigger paths (issue 22): mail arriving in
 * the simulator's Inbox -> change notification (the mail subscription) -> graphNotifications ->
 * queue -> syncWorker -> APPEND to the store; heard/deleted on the phone -> Dovecot push ->
 * storeNotifications -> mail run -> Graph. The fast read check and every safety-net timer are
 * off (SAFETY_NET_TIMERS), so each check is carried by its own path, and the runs' recorded
 * reasons say which one did the work.
 */
import fs from "node:fs";
import path from "node:path";
import { simpleParser } from "mailparser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SAFETY_NET_TIMERS, startWorld, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { enqueueLinkKinds } from "../../src/app/schedule.js";
import { enqueueSync } from "../../src/app/syncQueue.js";
import { openMailPorts } from "../../src/app/mail.js";
import { syncMail } from "../../src/sync/mailSync.js";
import { gateMailPorts } from "../../src/sync/writeGate.js";
import type { MailRecord } from "../../src/sync/mailPlanner.js";
import { statusReport } from "../../src/admin/status.js";

let w: World;
const users: Record<string, string> = {};
const DAY = 86_400_000;
const example1 = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "..", "fixtures", "mail", "message-get-example1.json"), "utf8")) as { subject: string; body: { contentType: "html"; content: string } };

interface Copy { uid: number; seen: boolean; subject: string; text: string; key: string }
async function copies(mailbox: string): Promise<Copy[]> {
  const c = await w.imap(mailbox);
  try {
    const out: Copy[] = [];
    if (!(c.mailbox as { exists: number }).exists) return out;
    for await (const m of c.fetch("1:*", { uid: true, flags: true, source: true })) {
      const p = await simpleParser(m.source!);
      if (p.headers.get("x-umc-origin") !== "exchange-mail") continue;
      out.push({ uid: m.uid, seen: m.flags?.has("\\Seen") ?? false, subject: p.subject ?? "", text: (p.text ?? "").replace(/\r\n/g, "\n"), key: String(p.headers.get("x-umc-key")) });
    }
    return out;
  } finally { await c.logout(); }
}
const storeCount = async (mailbox: string) => { const c = await w.imap(mailbox); try { return (c.mailbox as { exists: number }).exists; } finally { await c.logout(); } };
const onStore = async (mailbox: string, fn: (c: Awaited<ReturnType<World["imap"]>>) => Promise<unknown>) => { const c = await w.imap(mailbox); try { await fn(c); } finally { await c.logout(); } };
const inbox = (mailbox: string) => w.sim.outlook(users[mailbox]!).messages("inbox");
const receive = (mailbox: string, m: Parameters<ReturnType<GraphSimOutlook>["receive"]>[0]) => w.sim.outlook(users[mailbox]!).receive(m);
type GraphSimOutlook = World["sim"]["outlook"];
/** The reasons of the mail runs whose report shows `action` (the `mail.sync.done` line). */
const mailReasons = (linkId: string, action: string) => ((w.log as { lines?: Array<Record<string, unknown>> }).lines ?? [])
  .filter((l) => l.event === "mail.sync.done" && l.linkId === linkId && Number(l[action] ?? 0) > 0).map((l) => String(l.reason));
const subject = (s: string) => ({ subject: s, from: { name: "Ann Lee", address: "ann@contoso.test" }, body: { contentType: "text" as const, content: `Text of ${s}` } });

beforeAll(async () => {
  w = await startWorld({
    users: ["4901", "4902", "4903", "4904", "4905"], disabledFunctions: SAFETY_NET_TIMERS,
    profiles: [
      { id: "e2p", displayName: "E-mail on the phone", loopPreventionDomain: "voice.contoso.test", emailToPhone: { enabled: true } },
      { id: "e2p-both", displayName: "E-mail both ways, internal only", loopPreventionDomain: "voice.contoso.test", emailToPhone: { enabled: true, deletes: "both", filters: { internalOnly: true, maxSizeBytes: 20_000 }, attachments: { mode: "limit", maxBytes: 4096, types: ["text/"] } } },
      { id: "e2p-cap", displayName: "E-mail, ten at most", emailToPhone: { enabled: true, storeFolder: "Email", storeFolderCap: 10 } },
    ],
  });
}, 60_000);
afterAll(async () => { await w?.stop(); });

async function link(mailbox: string, upn: string, profile: string) {
  const { userId, linkId } = await w.link(mailbox, upn, profile);
  users[mailbox] = userId;
  return linkId;
}

describe("e-mail on the phone end to end", () => {
  it("first sync: copies unread mail of the last 30 days only, and subscribes to the Inbox", async () => {
    const upn = "alex@contoso.test";
    // Mail waiting before the link's first run (the user is made, mail delivered, then linked).
    const user = w.sim.addUser("0c0ffee0-0000-4000-8000-000000000001", { userPrincipalName: upn, proxyAddresses: [`SMTP:${upn}`] });
    const o = w.sim.outlook(user.id);
    o.receive({ ...subject("old news"), receivedDateTime: new Date(Date.now() - 40 * DAY).toISOString() });
    o.receive({ ...subject("already read"), isRead: true });
    o.receive({ subject: example1.subject, body: example1.body, isRead: false, from: { name: "Adele Vance", address: "adelev@contoso.test" } });
    users["4901"] = user.id;
    await w.deps.state.createLink({ linkId: "L-4901", tenantId: "0c0ffee0-0000-4000-8000-000000000001", endpointId: "voice-1", voiceMailbox: "4901", userId: user.id, upn, profileId: "e2p", state: "enabled" });
    await enqueueLinkKinds(w.deps, { linkId: "L-4901", profileId: "e2p" }, "admin");
    await expect.poll(async () => (await copies("4901")).map((c) => c.subject), { timeout: 20_000 }).toEqual([example1.subject]);
    await expect.poll(() => [...w.sim.subscriptions.values()].filter((s) => s.userId === user.id && /mailFolders\('inbox'\)\/messages$/i.test(s.resource)).map((s) => s.changeType.join(",")), { timeout: 15_000 }).toEqual(["created,updated,deleted"]);
    const copy = (await copies("4901"))[0]!;
    expect(copy.text).toBe("E-mail from Adele Vance <adelev@contoso.test>.\nSubject: 9/9/2018: concert.\n\nThe group represents Nevada.");
    expect(copy.seen).toBe(false);
    // The voicemail run leaves the copy alone (written by umconnect): nothing goes back to Exchange.
    await w.queueDrained();
    expect(inbox("4901").filter((m) => m.ext.size > 1)).toEqual([]);
  });

  it("copies new mail as it arrives (the Inbox notification), HTML rendered as text, attachments left out with a line", async () => {
    await w.queueDrained();
    receive("4901", { subject: "Plan", from: { name: "Ben", address: "ben@contoso.test" }, body: { contentType: "html", content: `<html><body><p>Hi Alex,</p><p>see <a href="https://contoso.test/plan">the plan</a> &amp; the table:</p><table><tr><td>Mon</td><td>9:00</td></tr></table></body></html>` },
      attachments: [{ name: "plan.pdf", contentType: "application/pdf", bytes: Buffer.alloc(3000, 7) }] });
    await expect.poll(async () => (await copies("4901")).find((c) => c.subject === "Plan")?.text, { timeout: 10_000 }).toBe("E-mail from Ben <ben@contoso.test>.\nSubject: Plan.\n\nHi Alex,\n\nsee the plan & the table:\n\nMon   9:00\n\nAttachments left out: plan.pdf (3 KB).");
    await expect.poll(() => mailReasons("L-4901", "copy"), { timeout: 5000 }).toContain("graph-change");
  });

  it("never copies invites, a reply from the voice domain, or the voice messages umconnect put into Exchange", async () => {
    await w.queueDrained();
    receive("4901", { ...subject("Team meeting"), messageClass: "IPM.Schedule.Meeting.Request", odataType: "#microsoft.graph.eventMessageRequest" });
    receive("4901", { ...subject("RE: your voice message"), from: { name: "Voice mail", address: "4711@voice.contoso.test" } });
    // A voice message deposited on the store: the voicemail sync copies it to the Exchange Inbox ...
    await w.dc.lda("4901", avayaVoiceMessage({ id: "e2p-vm-1", seconds: 12 }));
    await expect.poll(() => inbox("4901").filter((m) => m.ext.get("string 0x001a")?.value === "IPM.Note.Microsoft.Voicemail.UM.CA").length, { timeout: 15_000 }).toBe(1);
    // ... and a marker mail after them shows the mail runs have seen all three.
    receive("4901", subject("marker 1"));
    await expect.poll(async () => (await copies("4901")).map((c) => c.subject).sort(), { timeout: 10_000 }).toEqual([example1.subject, "Plan", "marker 1"].sort());
    await w.queueDrained();
    expect((await copies("4901")).map((c) => c.subject)).not.toContain("Team meeting");
    // The store holds the voice message once (its own), never an e-mail copy of its Exchange copy.
    expect(await storeCount("4901")).toBe(4);
  });

  it("keeps read state both ways: heard on the phone -> read in Outlook; read in Outlook -> \\Seen", async () => {
    await w.queueDrained();
    const plan = (await copies("4901")).find((c) => c.subject === "Plan")!;
    await onStore("4901", (c) => c.messageFlagsAdd(String(plan.uid), ["\\Seen"], { uid: true }));
    await expect.poll(() => inbox("4901").find((m) => m.subject === "Plan")?.isRead, { timeout: 10_000 }).toBe(true);
    await expect.poll(() => mailReasons("L-4901", "setGraphRead"), { timeout: 5000 }).toContain("store-change");
    await w.queueDrained();
    w.sim.outlook(users["4901"]!).markRead(inbox("4901").find((m) => m.subject === "marker 1")!.id);
    await expect.poll(async () => (await copies("4901")).find((c) => c.subject === "marker 1")?.seen, { timeout: 10_000 }).toBe(true);
    await expect.poll(() => mailReasons("L-4901", "setStoreSeen"), { timeout: 5000 }).toContain("graph-change");
  });

  it("deletes storeOnly: a store delete leaves the mail in Exchange; an Outlook delete removes the copy", async () => {
    await w.queueDrained();
    const plan = (await copies("4901")).find((c) => c.subject === "Plan")!;
    await onStore("4901", (c) => c.messageDelete(String(plan.uid), { uid: true }));
    await expect.poll(() => mailReasons("L-4901", "markStoreGone"), { timeout: 10_000 }).toContain("store-change");
    expect(inbox("4901").find((m) => m.subject === "Plan")).toBeTruthy();
    await w.queueDrained();
    w.sim.outlook(users["4901"]!).delete(inbox("4901").find((m) => m.subject === "marker 1")!.id);
    await expect.poll(async () => (await copies("4901")).map((c) => c.subject), { timeout: 10_000 }).toEqual([example1.subject]);
    // Read again later in Outlook: the copy deleted on the phone is not copied again.
    await w.queueDrained();
    w.sim.outlook(users["4901"]!).markRead(inbox("4901").find((m) => m.subject === "Plan")!.id, false);
    receive("4901", subject("marker 2"));
    await expect.poll(async () => (await copies("4901")).map((c) => c.subject).sort(), { timeout: 10_000 }).toEqual([example1.subject, "marker 2"].sort());
  });

  it("a body that cannot be rendered gives the subject and a note, and does not block the mail after it", async () => {
    await w.queueDrained();
    receive("4901", { ...subject("Deeply nested"), body: { contentType: "html", content: "<div>".repeat(20_000) + "x" + "</div>".repeat(20_000) } });
    receive("4901", subject("after the nested one"));
    await expect.poll(async () => (await copies("4901")).map((c) => c.subject).filter((s) => /nested/.test(s)).sort(), { timeout: 10_000 }).toEqual(["Deeply nested", "after the nested one"]);
    const bad = (await copies("4901")).find((c) => c.subject === "Deeply nested")!;
    expect(bad.text).toMatch(/^E-mail from Ann Lee <ann@contoso\.test>\.\nSubject: Deeply nested\.\n\n\(This e-mail could not be read on the phone: its HTML body could not be rendered as text \(RangeError\)\. Read it in Outlook\.\)$/);
  });

  it("deletes both and filters: internal senders only, size limit, attachments kept within the limit", async () => {
    const linkId = await link("4902", "bea@contoso.test", "e2p-both");
    await expect.poll(() => [...w.sim.subscriptions.values()].filter((s) => s.userId === users["4902"] && /mailFolders\('inbox'\)/i.test(s.resource)).length, { timeout: 15_000 }).toBe(1);
    await w.queueDrained();
    receive("4902", { ...subject("from outside"), from: { address: "sales@fabrikam.test" } });
    receive("4902", { ...subject("too large"), body: { contentType: "text", content: "x".repeat(30_000) } });
    receive("4902", { ...subject("notes"), attachments: [{ name: "notes.txt", contentType: "text/plain", bytes: Buffer.from("remember the milk") }, { name: "photo.jpg", contentType: "image/jpeg", bytes: Buffer.alloc(2000, 1) }] });
    await expect.poll(async () => (await copies("4902")).map((c) => c.subject), { timeout: 10_000 }).toEqual(["notes"]);
    const notes = (await copies("4902"))[0]!;
    expect(notes.text).toContain("Attachments left out: photo.jpg (2 KB).");
    expect(notes.text).toContain("Attached: notes.txt.");
    await w.queueDrained();
    expect((await copies("4902")).map((c) => c.subject)).toEqual(["notes"]);
    // A store delete also deletes in Outlook (moved to Deleted Items, as Outlook's Delete).
    await onStore("4902", (c) => c.messageDelete(String(notes.uid), { uid: true }));
    await expect.poll(() => inbox("4902").some((m) => m.subject === "notes"), { timeout: 10_000 }).toBe(false);
    expect(w.sim.outlook(users["4902"]!).messages("deleteditems").map((m) => m.subject)).toEqual(["notes"]);
    await expect.poll(() => mailReasons(linkId, "deleteInExchange"), { timeout: 5000 }).toContain("store-change");
  });

  it("keeps the store folder under its cap: the oldest copies leave the store, never Exchange", async () => {
    await link("4903", "cap@contoso.test", "e2p-cap");
    await expect.poll(() => [...w.sim.subscriptions.values()].filter((s) => s.userId === users["4903"] && /mailFolders\('inbox'\)/i.test(s.resource)).length, { timeout: 15_000 }).toBe(1);
    await w.queueDrained();
    const t0 = Date.now() - 3600_000;
    for (let i = 0; i < 12; i++) receive("4903", { ...subject(`cap ${String(i).padStart(2, "0")}`), receivedDateTime: new Date(t0 + i * 60_000).toISOString() });
    const names = Array.from({ length: 10 }, (_, i) => `cap ${String(i + 2).padStart(2, "0")}`);
    const inEmail = async () => {
      const c = await w.imap("4903");
      try {
        await c.mailboxOpen("Email");
        const out: string[] = [];
        if ((c.mailbox as { exists: number }).exists) for await (const m of c.fetch("1:*", { envelope: true })) out.push(m.envelope?.subject ?? "");
        return out.sort();
      } finally { await c.logout(); }
    };
    await expect.poll(inEmail, { timeout: 15_000 }).toEqual(names);
    await w.queueDrained();
    expect(await inEmail()).toEqual(names);
    expect(inbox("4903")).toHaveLength(12);
  });

  it("a crash right after an APPEND neither loses nor duplicates: the pending rows are resolved by the copies' keys", async () => {
    const linkId = await link("4904", "crash@contoso.test", "e2p");
    await expect.poll(() => [...w.sim.subscriptions.values()].filter((s) => s.userId === users["4904"] && /mailFolders\('inbox'\)/i.test(s.resource)).length, { timeout: 15_000 }).toBe(1);
    await w.queueDrained();
    // Their notifications are lost, so only the runs below see these messages.
    w.sim.faults.dropNotificationsNext = 3;
    for (const n of ["one", "two", "three"]) receive("4904", subject(`crash ${n}`));
    const l = (await w.deps.state.getLink(linkId))!;
    const profile = (await w.deps.directory()).linkProfile(l);
    // The crashed run holds the link's mail lease as a worker's run would: the runs its APPENDs'
    // pushes start wait (coalesce) instead of finishing its batch behind its back.
    const lease = await w.deps.state.acquireLease(`mail:${linkId}`, "crashed-worker", 60);
    const ports = await openMailPorts(w.deps, l, profile);
    let appends = 0;
    const crashed = syncMail({
      // The copies go as one MULTIAPPEND (store.appendMany) where the store offers it, else one by one.
      ...gateMailPorts(ports, { after: (write) => { if ((write === "store.append" || write === "store.appendMany") && ++appends === 1) throw new Error("worker killed after its first APPEND"); } }),
      rules: { ...profile.emailToPhone, loopPreventionDomain: profile.loopPreventionDomain, userAddress: l.upn }, log: w.deps.log, ids: { tenantId: l.tenantId, mailboxId: linkId },
    }).finally(() => ports.store.close());
    await expect(crashed).rejects.toThrow(/worker killed after its first APPEND/);
    const state = w.deps.state.recordState<MailRecord, object>(linkId, "mail");
    expect((await state.loadItems()).filter((r) => r.pendingAppend).length).toBeGreaterThan(0);
    expect((await copies("4904")).length).toBeGreaterThanOrEqual(1);
    await w.deps.state.releaseLease(lease);
    // The next run (a queued follow-up) finishes the batch.
    await enqueueSync(w.deps.syncQueue, { linkId, kind: "mail", reason: "follow-up", at: Date.now() });
    await expect.poll(async () => (await copies("4904")).map((c) => c.subject).sort(), { timeout: 10_000 }).toEqual(["crash one", "crash three", "crash two"]);
    await w.queueDrained();
    const after = await copies("4904");
    expect(new Set(after.map((c) => c.key)).size).toBe(3);
    expect((await state.loadItems()).filter((r) => r.pendingAppend || r.imapUid === undefined)).toEqual([]);
  });

  it("a batch of copies sent as one MULTIAPPEND: each copy is tied to its own message (heard on the phone, read in Outlook)", async () => {
    // Break seen red: appendChunk in src/sync/mailSync.ts giving the chunk's UIDs in reverse
    // order -> the phone's "heard" reads another message in Outlook.
    const linkId = await link("4905", "batch@contoso.test", "e2p");
    await expect.poll(() => [...w.sim.subscriptions.values()].filter((s) => s.userId === users["4905"] && /mailFolders\('inbox'\)/i.test(s.resource)).length, { timeout: 15_000 }).toBe(1);
    await w.queueDrained();
    // Their notifications are lost, so one run copies all five in one chunk.
    w.sim.faults.dropNotificationsNext = 5;
    const names = ["one", "two", "three", "four", "five"].map((n) => `batch ${n}`);
    for (const n of names) receive("4905", subject(n));
    await enqueueSync(w.deps.syncQueue, { linkId, kind: "mail", reason: "follow-up", at: Date.now() });
    await expect.poll(async () => (await copies("4905")).map((c) => c.subject).sort(), { timeout: 15_000 }).toEqual([...names].sort());
    await w.queueDrained();
    const readInOutlook = () => inbox("4905").filter((m) => m.isRead).map((m) => m.subject).sort();
    const seenOnPhone = async () => (await copies("4905")).filter((c) => c.seen).map((c) => c.subject).sort();
    const two = (await copies("4905")).find((c) => c.subject === "batch two")!;
    await onStore("4905", (c) => c.messageFlagsAdd(String(two.uid), ["\\Seen"], { uid: true }));
    await expect.poll(readInOutlook, { timeout: 10_000 }).toEqual(["batch two"]);
    await w.queueDrained();
    w.sim.outlook(users["4905"]!).markRead(inbox("4905").find((m) => m.subject === "batch five")!.id);
    await expect.poll(seenOnPhone, { timeout: 10_000 }).toEqual(["batch five", "batch two"]);
    await w.queueDrained();
    expect(readInOutlook()).toEqual(["batch five", "batch two"]);
  });

  it("a failing mail run shows on the status report, and the mail is copied once Graph answers again", async () => {
    await w.queueDrained();
    // Graph answers 503 to this mailbox for a while (the client retries each request 3 times).
    w.sim.mailboxFaults.arm(users["4901"]!).fail5xxNext = 8;
    receive("4901", subject("during the outage"));
    await expect.poll(async () => (await statusReport(w.deps)).alerts.filter((a) => a.linkId === "L-4901" && /^e-mail on the phone: /.test(a.text)).map((a) => a.code), { timeout: 15_000, interval: 100 }).toContain("GRAPH_UNAVAILABLE");
    await expect.poll(async () => (await copies("4901")).map((c) => c.subject), { timeout: 30_000 }).toContain("during the outage");
    await expect.poll(async () => (await w.deps.state.getLink("L-4901"))!.kinds?.mail?.lastError, { timeout: 10_000 }).toBeUndefined();
  });
});
