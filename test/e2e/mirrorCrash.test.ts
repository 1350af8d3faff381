/**
 * Crash safety of the disaster-recovery mirror (src/sync/mirrorSync.ts), as a real death: the
 * run executes in a child process (test/harness/crashRun.ts, kind "mirror") and is killed by
 * SIGKILL the moment its Nth write is answered (a backup APPEND / STORE / EXPUNGE, a journal,
 * pair or cursor row). Each case asserts the crash fired at write N; N runs over every write of
 * the phase, counted by a run of the same scenario to completion (not a constant). Then the
 * worker "restarts" (a fresh run) and the backup holds every production message exactly once
 * (0 duplicates, 0 lost) with production's flags; one more run changes nothing.
 *
 * Phase 1: the first copy of three messages. Phase 2: after a completed mirror, production
 * flags one message, expunges one and receives two new ones. Phase 3: after a completed
 * mirror of one message, six new ones copied in batches of two (UMC_MIRROR_BATCH=2), so the
 * copy pipeline is crossed at every point: the journal of batch k+1 and the pairs of batch
 * k-1 are written while batch k is appended. Those writes overlap, so the order in which they
 * are answered varies between runs: there each crash asserts that it fired at write N and
 * that write N is one the counting run made.
 *
 * Breaks used: journal rows treated as "not on the backup" without searching it (mirrorSync.ts
 * step 2) -> "phase 2 ... died at write 6 (backup.appendMany): duplicates on the backup:
 * expected 4 to be 6" and "phase 3 ... died at write 2 (backup.appendMany): expected 7 to be
 * 9"; the journal written for the first batch only -> "phase 3 ... died at write 3
 * (state.commit): expected 7 to be 9"; a batch's journal row keeping only its first entry
 * (src/state/mirror.ts) -> "phase 3 ... died at write 2 (backup.appendMany): expected 7 to be
 * 8". Phase 1 alone does not catch them: a first run lists both folders and re-matches.
 */
import { afterAll, describe, expect, it } from "vitest";
import { ImapFlow } from "imapflow";
import { startWorld, TENANT, ENDPOINT } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { countWrites, crashRun } from "../harness/crash.js";
import type { DovecotHandle } from "../harness/dovecot.js";
import { mirrorLink } from "../../src/app/mirror.js";

const POOL = 40;
const mailboxes = Array.from({ length: POOL }, (_, i) => `x${i}`);
const w = await startWorld({
  users: mailboxes, timers: false, quiet: true, endpoint: { vendor: "dovecot" },
  backupStore: {},
  profiles: [{ id: "dr", displayName: "Disaster recovery", mirror: { enabled: true } }],
});
afterAll(async () => { await w.stop(); });
const bc = w.bc!;
let next = 0;

async function imap(dc: DovecotHandle, user: string): Promise<ImapFlow> {
  const c = new ImapFlow({ host: dc.host, port: dc.port, secure: false, auth: { user, pass: `pw-${user}` }, logger: false });
  await c.connect();
  await c.mailboxOpen("INBOX");
  return c;
}

/** Message-ID -> flags, and how many times each Message-ID is there. */
async function contents(dc: DovecotHandle, user: string): Promise<{ ids: string[]; flags: Record<string, string> }> {
  const c = await imap(dc, user);
  const ids: string[] = [];
  const flags: Record<string, string> = {};
  try {
    if (c.mailbox && c.mailbox.exists) for await (const m of c.fetch("1:*", { envelope: true, flags: true })) {
      const id = m.envelope!.messageId!;
      ids.push(id);
      flags[id] = [...m.flags!].filter((f) => f !== "\\Recent").sort().join(" ");
    }
  } finally { await c.logout(); }
  return { ids: ids.sort(), flags };
}

type Phase = 1 | 2 | 3;
/** The crash runs' settings: phase 3 copies in batches of two (three batches of five messages). */
const envOf = (phase: Phase) => (phase === 3 ? { ...w.env, UMC_MIRROR_BATCH: "2" } : w.env);

async function scenario(phase: Phase): Promise<{ mailbox: string; linkId: string }> {
  const mailbox = mailboxes[next++];
  if (!mailbox) throw new Error("mailbox pool exhausted: the scenario makes more writes than expected");
  const linkId = `mc-${mailbox}`;
  await w.deps.state.createLink({ linkId, tenantId: TENANT, endpointId: ENDPOINT, voiceMailbox: mailbox, userId: `u-${mailbox}`, profileId: "dr", state: "paused" });
  for (let i = 0; i < (phase === 3 ? 1 : 3); i++) await w.dc.lda(mailbox, avayaVoiceMessage({ id: `${mailbox}-${i}` }));
  if (phase === 3) {
    await mirrorLink(w.deps, (await w.deps.state.getLink(linkId))!, { mode: "incremental", log: w.deps.log });
    for (let i = 1; i < 7; i++) await w.dc.lda(mailbox, avayaVoiceMessage({ id: `${mailbox}-${i}` }));
  }
  if (phase === 2) {
    const link = (await w.deps.state.getLink(linkId))!;
    await mirrorLink(w.deps, link, { mode: "incremental", log: w.deps.log });
    const c = await imap(w.dc, mailbox);
    await c.messageFlagsAdd("1", ["\\Seen", "$Heard"], { uid: true });
    await c.messageDelete("2", { uid: true });
    await c.logout();
    for (let i = 3; i < 5; i++) await w.dc.lda(mailbox, avayaVoiceMessage({ id: `${mailbox}-${i}` }));
  }
  return { mailbox, linkId };
}

async function assertMirrored(mailbox: string, linkId: string, label: string) {
  const link = (await w.deps.state.getLink(linkId))!;
  await mirrorLink(w.deps, link, { mode: "incremental", log: w.deps.log }); // the restarted worker
  const [prod, backup] = await Promise.all([contents(w.dc, mailbox), contents(bc, mailbox)]);
  expect(new Set(backup.ids).size, `${label}: duplicates on the backup`).toBe(backup.ids.length);
  expect(backup.ids, `${label}: lost or extra on the backup`).toEqual(prod.ids);
  expect(backup.flags, `${label}: flags`).toEqual(prod.flags);
  // One more run, in full: nothing to do.
  const again = await mirrorLink(w.deps, link, { mode: "verify", log: w.deps.log });
  const r = again!.folders.INBOX!;
  expect({ copied: r.copied, flagsSet: r.flagsSet, expunged: r.expunged }, `${label}: a further run acted`).toEqual({ copied: 0, flagsSet: 0, expunged: 0 });
}

describe.each([1, 2, 3] as const)("mirror crash safety, phase %i", (phase) => {
  let writes: string[] = [];
  it("counts the phase's writes", async () => {
    const s = await scenario(phase);
    writes = await countWrites({ env: envOf(phase), kind: "mirror", linkId: s.linkId });
    expect(writes.length).toBeGreaterThanOrEqual(phase === 2 ? 8 : 4);
    // Three batches: a journal, an APPEND and a pairs commit each.
    if (phase === 3) for (const x of ["state.journal", "backup.appendMany", "state.commit"]) expect(writes.filter((n) => n === x), x).toHaveLength(3);
    expect(writes.filter((x) => x.startsWith("backup.append")).length).toBeGreaterThan(0); // MULTIAPPEND where offered
    expect(writes).toContain("state.journal");
    if (phase === 2) expect(writes).toEqual(expect.arrayContaining(["backup.setFlags", "backup.expunge"]));
    await assertMirrored(s.mailbox, s.linkId, "counting run");
  }, 60_000);

  it("dies after every write and loses or duplicates nothing", async () => {
    expect(writes.length).toBeGreaterThan(0);
    for (let n = 1; n <= writes.length; n++) {
      const s = await scenario(phase);
      const write = await crashRun({ env: envOf(phase), kind: "mirror", linkId: s.linkId }, n);
      if (phase === 3) expect(writes).toContain(write);
      else expect(write).toBe(writes[n - 1]);
      await assertMirrored(s.mailbox, s.linkId, `died at write ${n} (${write})`);
    }
  }, 300_000);
});
