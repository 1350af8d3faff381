/**
 * The disaster-recovery mirror end to end (src/app/mirror.ts): two private Dovecot instances,
 * production (push to the dev host, "user*master" login) and its backup (SASL PLAIN authzid
 * login); mirror runs start from the store's push through the queue, and from the reconcile
 * timer (the full verify). The safety-net timers are off, so only the path under test acts.
 */
import { afterAll, describe, expect, it } from "vitest";
import { ImapFlow } from "imapflow";
import { startWorld, SAFETY_NET_TIMERS, TENANT, ENDPOINT, BACKUP_ENDPOINT, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import type { DovecotHandle } from "../harness/dovecot.js";
import { main } from "../../src/cli/main.js";
import { mirrorLink } from "../../src/app/mirror.js";
import { loginCredential } from "../../src/app/credentials.js";
import { tryTakeConnection } from "../../src/app/connectionBudget.js";

const USERS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"];
// The backup refuses messages over 40 KB (Dovecot quota plugin, quota_max_mail_size): "bad input".
const QUOTA = `mail_plugins = $mail_plugins quota
protocol imap {
  mail_plugins = $mail_plugins quota imap_quota
}
plugin {
  quota = maildir:User quota
  quota_max_mail_size = 40k
}
`;
const w: World = await startWorld({
  users: USERS, disabledFunctions: SAFETY_NET_TIMERS,
  backupStore: { extraConf: QUOTA },
  profiles: [{ id: "dr", displayName: "Disaster recovery", mirror: { enabled: true, include: ["INBOX", "Greetings*"], exclude: ["Greetings-Old"] } }],
});
// main() reads the UMC_* settings from the environment, as the installed command does.
Object.assign(process.env, w.env);
async function umconnect(...args: string[]): Promise<{ code: number; stdout: string }> {
  const out: string[] = [];
  const code = await main(args, (x) => out.push(x), () => undefined);
  return { code, stdout: out.join("\n") };
}
afterAll(async () => { await w.stop(); });
const bc = w.bc!;

async function session(dc: DovecotHandle, user: string, folder = "INBOX"): Promise<ImapFlow> {
  const c = new ImapFlow({ host: dc.host, port: dc.port, secure: false, auth: { user, pass: `pw-${user}` }, logger: false });
  await c.connect();
  await c.mailboxOpen(folder);
  return c;
}

interface Seen { messageId: string; flags: string[]; internalDate: string; size: number }
/** Every message of a folder: Message-ID, flags (without \Recent), INTERNALDATE, size. */
async function folder(dc: DovecotHandle, user: string, name = "INBOX"): Promise<Seen[]> {
  const c = new ImapFlow({ host: dc.host, port: dc.port, secure: false, auth: { user, pass: `pw-${user}` }, logger: false });
  await c.connect();
  try {
    const box = await c.mailboxOpen(name).catch(() => undefined);
    if (!box || !box.exists) return [];
    const out: Seen[] = [];
    for await (const m of c.fetch("1:*", { uid: true, flags: true, internalDate: true, size: true, envelope: true })) {
      out.push({ messageId: m.envelope?.messageId ?? "", flags: [...(m.flags ?? [])].filter((f) => f !== "\\Recent").sort(), internalDate: new Date(m.internalDate!).toISOString(), size: m.size! });
    }
    return out.sort((a, b) => a.messageId.localeCompare(b.messageId));
  } finally {
    await c.logout();
  }
}
const same = async (user: string, name = "INBOX") => JSON.stringify(await folder(bc, user, name)) === JSON.stringify(await folder(w.dc, user, name));

describe("disaster-recovery mirror", () => {
  it("copies new messages within seconds of the push, keeping INTERNALDATE, size and flags; flags and deletes follow", async () => {
    for (let i = 0; i < 3; i++) await w.dc.lda("m1", avayaVoiceMessage({ id: `m1-${i}` }));
    await w.link("m1", "m1@contoso.test", "dr");
    await expect.poll(() => folder(bc, "m1").then((f) => f.length), { timeout: 15_000 }).toBe(3);
    expect(await same("m1")).toBe(true);
    // A new deposit: the push starts a mirror run.
    await w.dc.lda("m1", avayaVoiceMessage({ id: "m1-new" }));
    await expect.poll(() => folder(bc, "m1").then((f) => f.length), { timeout: 10_000 }).toBe(4);
    // Heard, flagged, a keyword, marked \Deleted (not expunged) on production.
    const c = await session(w.dc, "m1");
    await c.messageFlagsAdd("1", ["\\Seen", "\\Flagged", "$Urgent"]);
    await c.messageFlagsAdd("2", ["\\Deleted"]);
    await expect.poll(() => same("m1"), { timeout: 10_000 }).toBe(true);
    expect((await folder(bc, "m1")).flatMap((m) => m.flags).sort()).toEqual(["$Urgent", "\\Deleted", "\\Flagged", "\\Seen"]);
    // Expunged on production (message 3, and message 2 that was marked \Deleted): gone from the backup.
    await c.messageDelete("3");
    await c.logout();
    expect(await folder(w.dc, "m1")).toHaveLength(2);
    await expect.poll(() => folder(bc, "m1").then((f) => f.length), { timeout: 10_000 }).toBe(2);
    expect(await same("m1")).toBe(true);
  }, 60_000);

  it("mirrors greetings folders the profile includes, not the excluded one", async () => {
    const c = await session(w.dc, "m2");
    for (const f of ["Greetings", "Greetings-Old"]) await c.mailboxCreate(f);
    const greeting = avayaVoiceMessage({ id: "m2-greeting" });
    await c.append("Greetings", greeting, ["\\Seen"], new Date("2025-12-24T10:00:00Z"));
    await c.append("Greetings-Old", avayaVoiceMessage({ id: "m2-old" }), [], new Date("2024-01-01T10:00:00Z"));
    await c.logout();
    await w.link("m2", "m2@contoso.test", "dr");
    await expect.poll(() => folder(bc, "m2", "Greetings").then((f) => f.length), { timeout: 15_000 }).toBe(1);
    expect(await same("m2", "Greetings")).toBe(true);
    expect((await folder(bc, "m2", "Greetings"))[0]!.internalDate).toBe("2025-12-24T10:00:00.000Z");
    expect(await folder(bc, "m2", "Greetings-Old")).toEqual([]);
  }, 60_000);

  it("a copy of several batches appends on two backup connections at once; with no free connection slot, on one", async () => {
    // Breaks seen red: the executor's extra lane never started (at most 1 MULTIAPPEND in
    // flight, 1 backup login); the lane waiting for the budget instead of going without it.
    const deps = { ...w.deps, config: { ...w.deps.config, mirror: { ...w.deps.config.mirror, batch: 2, appendConnections: 2 } } };
    const run = async (mailbox: string, holdFirst = false) => {
      // 30 messages in 15 batches: the extra lane's login is answered long before the first lane is through.
      for (let i = 0; i < 30; i++) await w.dc.lda(mailbox, avayaVoiceMessage({ id: `${mailbox}-${i}` }));
      const linkId = `lanes-${mailbox}`;
      // Paused: no push starts a run of its own; the run below is the only one.
      await w.deps.state.createLink({ linkId, tenantId: TENANT, endpointId: ENDPOINT, voiceMailbox: mailbox, userId: `u-${mailbox}`, profileId: "dr", state: "paused" });
      let inFlight = 0;
      let most = 0;
      let letFirstGo: (() => void) | undefined;
      const logins = () => bc.log().split("\n").filter((l) => l.includes("Login: user=<") && l.includes(`<${mailbox}>`)).length;
      const before = logins();
      const started = Date.now();
      const out = await mirrorLink(deps, (await w.deps.state.getLink(linkId))!, {
        mode: "incremental", log: w.deps.log,
        hooks: {
          before: async (n) => {
            if (n !== "backup.appendMany") return;
            most = Math.max(most, ++inFlight);
            // The first append waits (at most 20 s) for a second one to start beside it: on a
            // loaded machine the first lane may otherwise be through before the second logs in.
            if (holdFirst && !letFirstGo) {
              await new Promise<void>((resolve) => {
                const timer = setTimeout(resolve, 20_000);
                letFirstGo = () => { clearTimeout(timer); resolve(); };
              });
            } else letFirstGo?.();
          },
          after: (n) => { if (n === "backup.appendMany") inFlight--; },
        },
      });
      const ms = Date.now() - started;
      const backupLogins = logins() - before;
      expect(out!.folders.INBOX!.copied).toBe(30);
      expect(await same(mailbox)).toBe(true);
      return { most, logins: backupLogins, ms };
    };
    const two = await run("m8", true);
    expect(two.most).toBe(2);
    expect(two.logins).toBe(2);
    // The next incremental run reads the pairs its change names, not the folder's 30.
    // (Break seen red: loadPairs always reading all pairs.)
    await w.dc.lda("m8", avayaVoiceMessage({ id: "m8-one-more" }));
    const asked: Array<string[] | undefined> = [];
    const state = w.deps.state;
    // (A proxy of an empty object: the store's own methods are read-only on it.)
    const counting = new Proxy({} as typeof state, { get: (_, p) => (p === "mirrorState" ? (linkId: string, folder: string) => {
      const port = state.mirrorState(linkId, folder);
      return { ...port, loadPairs: (ids?: string[]) => { asked.push(ids); return port.loadPairs(ids); } };
    } : ((v) => (typeof v === "function" ? v.bind(state) : v))(Reflect.get(state, p, state))) });
    const more = await mirrorLink({ ...deps, state: counting }, (await w.deps.state.getLink("lanes-m8"))!, { mode: "incremental", log: w.deps.log });
    expect(more!.folders.INBOX!.copied).toBe(1);
    expect(asked).toHaveLength(1);
    expect(asked[0]).toHaveLength(1);
    expect(await same("m8")).toBe(true);
    // The backup's budget for m9 has one slot left (the run's own backup session takes it).
    const cred = await loginCredential(w.deps, { linkId: "lanes-m9~backup", endpointId: BACKUP_ENDPOINT });
    const held: Array<() => void> = [];
    for (;;) {
      const release = await tryTakeConnection(w.deps, BACKUP_ENDPOINT, "m9", cred.endpoint.connectionBudget!);
      if (!release) break;
      held.push(release);
    }
    held.pop()!();
    try {
      const one = await run("m9");
      expect(one.most).toBe(1);
      expect(one.logins).toBe(1);
      // Not held up by waiting for a slot (the budget's wait is 10 s).
      expect(one.ms).toBeLessThan(8_000);
    } finally {
      for (const r of held) r();
    }
  }, 60_000);

  it("re-matches after a UIDVALIDITY reset on either side and copies nothing again", async () => {
    for (let i = 0; i < 4; i++) await w.dc.lda("m3", avayaVoiceMessage({ id: `m3-${i}` }));
    const { linkId } = await w.link("m3", "m3@contoso.test", "dr");
    await expect.poll(() => folder(bc, "m3").then((f) => f.length), { timeout: 15_000 }).toBe(4);
    const rebuild = async (dc: DovecotHandle) => {
      const c = await session(dc, "m3");
      const all: Array<{ source: Buffer; flags: string[]; date: Date }> = [];
      for await (const m of c.fetch("1:*", { source: true, flags: true, internalDate: true })) all.push({ source: m.source!, flags: [...m.flags!].filter((f) => f !== "\\Recent"), date: new Date(m.internalDate!) });
      await c.logout();
      await dc.doveadm("expunge", "-u", "m3", "mailbox", "INBOX", "all");
      await dc.doveadm("mailbox", "update", "-u", "m3", "--uid-validity", String(Math.floor(Date.now() / 1000) + Math.floor(Math.random() * 100_000)), "INBOX");
      const d = await session(dc, "m3");
      for (const m of all) await d.append("INBOX", m.source, m.flags, m.date);
      await d.logout();
    };
    const lines = () => ((w.log as { lines?: Array<Record<string, unknown>> }).lines ?? []);
    // Backup rebuilt (same messages, new UIDs): the next verify finds every one by identity.
    await rebuild(bc);
    await w.runFunction("reconcile");
    await expect.poll(async () => lines().filter((l) => l.event === "mirror.sync.done" && l.linkId === linkId && l.mode === "verify" && Number(l.rematched) === 4).length, { timeout: 15_000 }).toBeGreaterThan(0);
    expect(await folder(bc, "m3")).toHaveLength(4);
    // Production rebuilt. A rebuild pushes at every step (the expunge, each append); a run between
    // two appends would rightly mirror the half-rebuilt store, so the link is paused meanwhile and
    // one push afterwards (a flag set by a phone) starts the run that sees the new UIDVALIDITY.
    await w.deps.state.modifyLink(linkId, (l) => ({ ...l, state: "paused" }));
    await w.queueDrained();
    await rebuild(w.dc);
    await w.deps.state.modifyLink(linkId, (l) => ({ ...l, state: "enabled" }));
    const phone = await session(w.dc, "m3");
    await phone.messageFlagsAdd("1", ["\\Flagged"]);
    await phone.logout();
    // Three re-matched by identity as they are; the flagged one re-matched with its new flag set.
    await expect.poll(async () => lines().filter((l) => l.event === "mirror.sync.done" && l.linkId === linkId && l.mode === "incremental" && Number(l.rematched) === 3 && Number(l.flagsSet) === 1).length, { timeout: 15_000 }).toBeGreaterThan(0);
    await w.queueDrained();
    expect(await folder(bc, "m3")).toHaveLength(4);
    expect(lines().filter((l) => l.event === "mirror.sync.done" && l.linkId === linkId).reduce((a, l) => a + Number(l.copied), 0)).toBe(4);
    expect(await same("m3")).toBe(true);
  }, 90_000);

  it("a message the backup refuses is recorded with its reason and retried later; the rest is copied", async () => {
    await w.dc.lda("m4", avayaVoiceMessage({ id: "m4-small" }));
    await w.dc.lda("m4", avayaVoiceMessage({ id: "m4-large", audioSamples: 30_000 }));
    await w.dc.lda("m4", avayaVoiceMessage({ id: "m4-small-2" }));
    const sizes = (await folder(w.dc, "m4")).map((m) => m.size);
    expect(sizes.filter((s) => s > 40 * 1024)).toHaveLength(1);
    const { linkId } = await w.link("m4", "m4@contoso.test", "dr");
    await expect.poll(() => folder(bc, "m4").then((f) => f.length), { timeout: 15_000 }).toBe(2);
    await expect.poll(async () => (await w.deps.state.getLink(linkId))?.kinds?.mirror?.skipped, { timeout: 10_000 }).toBe(1);
    const { pairs } = await w.deps.state.mirrorState(linkId, "INBOX").loadPairs();
    const refused = pairs.filter((p) => p.failed);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.failed).toMatchObject({ attempts: 1 });
    expect(refused[0]!.failed!.reason).toMatch(/too large|size|quota/i);
    expect(Date.parse(refused[0]!.failed!.retryAt)).toBeGreaterThan(Date.now());
  }, 60_000);

  it("a production wipe does not empty the backup (mass-delete guard)", async () => {
    for (let i = 0; i < 6; i++) await w.dc.lda("m5", avayaVoiceMessage({ id: `m5-${i}` }));
    const { linkId } = await w.link("m5", "m5@contoso.test", "dr");
    await expect.poll(() => folder(bc, "m5").then((f) => f.length), { timeout: 15_000 }).toBe(6);
    // Emptied over IMAP (the store's push reports it).
    const c = await session(w.dc, "m5");
    await c.messageDelete("1:*");
    await c.logout();
    await expect.poll(async () => (await w.deps.state.getLink(linkId))?.kinds?.mirror?.lastError?.code, { timeout: 10_000 }).toBe("MASS_DELETE_REFUSED");
    expect(await folder(bc, "m5")).toHaveLength(6);
  }, 60_000);

  it("umconnect mirror verify reports missing and flag differences (JSON, exit 1); mirror repair queues the full run that fixes them", async () => {
    for (let i = 0; i < 3; i++) await w.dc.lda("m6", avayaVoiceMessage({ id: `m6-${i}` }));
    const { linkId } = await w.link("m6", "m6@contoso.test", "dr");
    await expect.poll(() => folder(bc, "m6").then((f) => f.length), { timeout: 15_000 }).toBe(3);
    // The backup lags by seconds (runs of other kinds may still be touching production's flags).
    await expect.poll(async () => (await umconnect("mirror", "verify", "m6", "--json")).code, { timeout: 15_000 }).toBe(0);
    await w.queueDrained();
    const ok = await umconnect("mirror", "verify", "m6", "--json");
    expect(JSON.parse(ok.stdout)).toMatchObject({ linkId, inStep: true, folders: { INBOX: { production: 3, backup: 3, missing: [], extra: [], flagDifferences: [] } } });
    // Someone changed the backup behind the mirror's back: one message gone, one flagged.
    const b = await session(bc, "m6");
    await b.messageDelete("1");
    await b.messageFlagsAdd("1", ["\\Flagged"]);
    await b.logout();
    const bad = await umconnect("mirror", "verify", "m6", "--json");
    expect(bad.code).toBe(1);
    const r = JSON.parse(bad.stdout);
    expect(r.inStep).toBe(false);
    expect(r.folders.INBOX).toMatchObject({ production: 3, backup: 2, extra: [], duplicates: [] });
    expect(r.folders.INBOX.missing).toHaveLength(1);
    expect(r.folders.INBOX.flagDifferences).toEqual([expect.objectContaining({ production: [], backup: ["\\Flagged"] })]);
    expect((await umconnect("mirror", "repair", "m6")).code).toBe(0);
    await expect.poll(async () => (await umconnect("mirror", "verify", linkId, "--json")).code, { timeout: 15_000 }).toBe(0);
    expect(await same("m6")).toBe(true);
  }, 60_000);
});
