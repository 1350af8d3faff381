/**
 * The disaster-recovery mirror on a store without a push hook (issue #21 point 3, with #16's
 * watchers): production Dovecot without the Lua hook, its endpoint set to notify "idle", timers
 * off (no poll, no reconcile). A message delivered to a mirrored mailbox reaches the backup
 * only through the IDLE watch timer's function -> the queue -> a mirror run.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImapFlow } from "imapflow";
import { startWorld, type World } from "./world.js";
import { watchStoresEvenFunction } from "../../functions/timers.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";

const USER = "7501";
let w: World;
type Line = Record<string, unknown>;
const lines = () => ((w.log as { lines?: Line[] }).lines ?? []);

/** Message-IDs in the backup's INBOX of USER. */
async function backupIds(): Promise<string[]> {
  const bc = w.bc!;
  const c = new ImapFlow({ host: bc.host, port: bc.port, secure: false, auth: { user: USER, pass: `pw-${USER}` }, logger: false });
  await c.connect();
  try {
    const box = await c.mailboxOpen("INBOX");
    const out: string[] = [];
    if (box.exists) for await (const m of c.fetch("1:*", { envelope: true })) out.push(m.envelope?.messageId ?? "");
    return out;
  } finally { await c.logout(); }
}

beforeAll(async () => {
  w = await startWorld({
    users: [USER], timers: false, storePush: false, endpoint: { notify: "idle" }, env: { UMC_WATCH_HOLD_SECONDS: "20" },
    backupStore: {}, profiles: [{ id: "dr", displayName: "Disaster recovery", mirror: { enabled: true } }],
  });
  await w.link(USER, `mirror-idle${USER}@contoso.test`, "dr");
  await w.queueDrained(60_000);
}, 90_000);
afterAll(async () => { await w?.stop(); });

describe("mirror through IDLE watchers", () => {
  it("a message delivered to production reaches the backup through the IDLE watch, with no push hook and no poll", async () => {
    // Break seen red: watchers.ts requesting only the voicemail run on a change (the kinds of
    // an INBOX change being ["voicemail"]; now src/app/storeChanges.ts) -> the backup never gets
    // the message (nothing else starts a mirror run here).
    const before = await backupIds();
    const watcher = (watchStoresEvenFunction.handler as (t: unknown, c: unknown) => Promise<void>)({}, {});
    await expect.poll(() => lines().some((l) => l.event === "watcher.shard.taken"), { timeout: 15_000 }).toBe(true);
    // Watched once the IDLE is on (Dovecot lists the connection).
    await expect.poll(async () => (await w.dc.doveadm("who")).includes(USER), { timeout: 15_000 }).toBe(true);
    const raw = avayaVoiceMessage({ id: "mirror-idle-1" });
    const messageId = /^message-id:\s*(\S+)/im.exec(raw.toString())![1]!;
    await w.dc.lda(USER, raw);
    await expect.poll(async () => (await backupIds()).includes(messageId), { timeout: 15_000 }).toBe(true);
    expect(before).not.toContain(messageId);
    expect(lines().some((l) => l.event === "watcher.change" && l.linkId === `L-${USER}`)).toBe(true);
    await watcher;
  }, 60_000);
});
