/**
 * The disaster-recovery mirror against mbsync (isync 1.4, Debian package `isync`, installed by
 * scripts/setup.sh), in one run on the same two Dovecot instances (production and backup, both
 * implicit TLS with the test store CA) with the same data: production mailbox "mb" is mirrored
 * by mbsync (Sync Pull, Expunge Near, CopyArrivalDate: a one-way mirror keeping INTERNALDATE),
 * production mailbox "um" (identical messages) by umconnect's mirror run (src/app/mirror.ts).
 *
 * Phases, each timed for both: the initial copy of N voice-sized messages (~55 KB, N from
 * UMC_BENCH_MIRROR_COUNT, default 2,000), a no-op rerun, 100 deletes, 200 new messages.
 * Figures: umconnect's time per phase against mbsync's (the reference; ratio < 1 is faster),
 * initial throughput, the IMAP commands of umconnect's no-op run (FETCH must be 0: with
 * CONDSTORE/QRESYNC nothing is listed), peak RSS of the bench process (< 256 MB; it also
 * holds the Graph simulator and the test host), and the backup's completeness (0 lost, 0
 * duplicates, for both tools).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import inspector from "node:inspector";
import os from "node:os";
import path from "node:path";
import { ImapFlow } from "imapflow";
import { startWorld, TENANT, ENDPOINT, type World } from "../test/e2e/world.js";
import { ensureTestCerts } from "../test/harness/certs.js";
import { avayaVoiceMessage } from "../test/fixtures/voicemail.js";
import type { DovecotHandle } from "../test/harness/dovecot.js";
import { mirrorLink } from "../src/app/mirror.js";
import { mirrorCommandMs, mirrorCommands } from "../src/imap/mirrorFolder.js";
import type { Figure } from "./report.js";

export const title = "Disaster-recovery mirror vs mbsync (two Dovecot instances, implicit TLS)";

const N = Number(process.env.UMC_BENCH_MIRROR_COUNT ?? 2000);
/** UMC_MIRROR_BATCH for umconnect's runs (messages per FETCH, journal row and MULTIAPPEND), when set. */
const BATCH = process.env.UMC_MIRROR_BATCH;
const DELETES = 100;
const NEW = 200;

async function imap(dc: DovecotHandle, user: string, ca: string): Promise<ImapFlow> {
  const c = new ImapFlow({ host: dc.host, port: dc.port, secure: true, tls: { ca: [ca] }, auth: { user: `${user}*${dc.master.user}`, pass: dc.master.pass }, logger: false });
  await c.connect();
  await c.mailboxOpen("INBOX");
  return c;
}

async function messageIds(dc: DovecotHandle, user: string, ca: string): Promise<string[]> {
  const c = await imap(dc, user, ca);
  const ids: string[] = [];
  try {
    if (c.mailbox && c.mailbox.exists) for await (const m of c.fetch("1:*", { envelope: true })) ids.push(m.envelope?.messageId ?? "");
  } finally { await c.logout(); }
  return ids;
}

function mbsyncConfig(w: World, ca: string, dir: string): string {
  const store = (name: string, dc: DovecotHandle) => `IMAPAccount ${name}
Host 127.0.0.1
Port ${dc.port}
User mb*${dc.master.user}
Pass ${dc.master.pass}
SSLType IMAPS
CertificateFile ${ca}
AuthMechs PLAIN LOGIN

IMAPStore ${name}-store
Account ${name}
`;
  // isync 1.4: SSLType (TLSType is 1.5's name); global options come before the sections.
  const cfg = `SyncState ${dir}/state/

${store("prod", w.dc)}
${store("backup", w.bc!)}

Channel mirror
Far :prod-store:INBOX
Near :backup-store:INBOX
Sync Pull
Create Near
Expunge Near
CopyArrivalDate yes
`;
  fs.mkdirSync(path.join(dir, "state"), { recursive: true });
  const file = path.join(dir, "mbsyncrc");
  fs.writeFileSync(file, cfg, { mode: 0o600 });
  return file;
}

/**
 * UMC_BENCH_MIRROR_PROFILE=<file.cpuprofile>: a V8 CPU profile of umconnect's initial run only
 * (the loading of the data and mbsync's runs left out), for Chrome DevTools or speedscope.
 */
async function profiled<T>(fn: () => Promise<T>): Promise<T> {
  const file = process.env.UMC_BENCH_MIRROR_PROFILE;
  if (!file) return fn();
  const session = new inspector.Session();
  session.connect();
  const post = (method: string) => new Promise<unknown>((resolve, reject) => session.post(method, (e, r) => (e ? reject(e) : resolve(r))));
  await post("Profiler.enable");
  await post("Profiler.start");
  try {
    return await fn();
  } finally {
    const { profile } = (await post("Profiler.stop")) as { profile: unknown };
    fs.writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
    console.log(`mirror bench: CPU profile of umconnect's initial run in ${file}`);
  }
}

function runMbsync(cfg: string): number {
  const t = performance.now();
  const r = spawnSync("mbsync", ["-c", cfg, "-q", "mirror"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`mbsync failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return performance.now() - t;
}

export async function run(): Promise<Figure[]> {
  if (spawnSync("mbsync", ["-v"]).error) throw new Error("mbsync not found: apt-get install isync (scripts/setup.sh installs it)");
  const w = await startWorld({ users: ["mb", "um"], quiet: true, timers: false, storeTls: "implicit", storePush: false, backupStore: {}, profiles: [{ id: "dr", displayName: "DR", mirror: { enabled: true } }], ...(BATCH ? { env: { UMC_MIRROR_BATCH: BATCH } } : {}) });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "umc-mbsync-"));
  try {
    return await measure(w, dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await w.stop();
  }
}

async function measure(w: World, dir: string): Promise<Figure[]> {
  const storeCerts = ensureTestCerts(path.join(path.dirname(ensureTestCerts().caCertPath), "..", "store-certs"));
  const ca = fs.readFileSync(storeCerts.caCertPath, "utf8");
  const cfg = mbsyncConfig(w, storeCerts.caCertPath, dir);
  const base = Date.parse("2026-01-05T08:00:00Z");
  const message = (i: number) => avayaVoiceMessage({ id: `bench-${i}`, caller: `Caller ${i}`, number: `+49 30 ${1_000_000 + i}`, date: new Date(base + i * 60_000), audioSamples: 20_000 });
  const size = message(0).length;
  // Identical data on both production mailboxes (same bytes, same INTERNALDATE, same flags).
  const load = async (from: number, count: number) => {
    for (const user of ["mb", "um"]) {
      const c = await imap(w.dc, user, ca);
      for (let i = from; i < from + count; i++) await c.append("INBOX", message(i), i % 3 ? [] : ["\\Seen"], new Date(base + i * 60_000));
      await c.logout();
    }
  };
  await load(0, N);

  // Time spent waiting on the mirror's state (Table Storage), by method, next to the IMAP
  // commands' (mirrorCommandMs): where the initial copy's time goes.
  const stateMs = new Map<string, number>();
  const state = w.deps.state;
  const timedState = (linkId: string, folder: string) => {
    const port = state.mirrorState(linkId, folder);
    return Object.fromEntries(Object.entries(port).map(([k, f]) => [k, async (...a: unknown[]) => {
      const t = performance.now();
      try { return await (f as (...x: unknown[]) => Promise<unknown>)(...a); } finally { stateMs.set(k, (stateMs.get(k) ?? 0) + performance.now() - t); }
    }])) as unknown as ReturnType<typeof state.mirrorState>;
  };
  // A proxy over an empty object: the state store's own methods are read only (a proxy of it may not change them).
  const deps = { ...w.deps, state: new Proxy({} as typeof state, { get: (_, p) => (p === "mirrorState" ? timedState : ((v) => (typeof v === "function" ? v.bind(state) : v))(Reflect.get(state, p, state))) }) };
  await w.deps.state.createLink({ linkId: "L-um", tenantId: TENANT, endpointId: ENDPOINT, voiceMailbox: "um", userId: "bench-user", profileId: "dr", state: "paused" });
  const umRun = async () => {
    const link = (await w.deps.state.getLink("L-um"))!;
    const t = performance.now();
    const r = await mirrorLink(deps, link, { mode: "incremental", log: w.deps.log });
    return { ms: performance.now() - t, report: r!.folders.INBOX! };
  };

  const mbInitial = runMbsync(cfg);
  const umInitial = await profiled(umRun);
  const ms = (m: Map<string, number>) => JSON.stringify(Object.fromEntries([...m].map(([k, v]) => [k, Math.round(v)])));
  console.log(`mirror bench: umconnect initial run, IMAP commands ${JSON.stringify(Object.fromEntries(mirrorCommands))}, ms waiting ${ms(mirrorCommandMs)}, ms waiting on state ${ms(stateMs)} of ${Math.round(umInitial.ms)} ms in all; the copy pipeline waited on (ms) ${JSON.stringify(Object.fromEntries(Object.entries(umInitial.report.waitedMs).map(([k, v]) => [k, Math.round(v)])))}`);
  const mbNoop = runMbsync(cfg);
  mirrorCommands.clear();
  const umNoop = await umRun();
  const noopCommands = Object.fromEntries(mirrorCommands);
  const noopFetches = [...mirrorCommands].filter(([k]) => k.startsWith("FETCH")).reduce((a, [, n]) => a + n, 0);

  // 100 deletes on production (the same UIDs of both mailboxes), then 200 new messages.
  for (const user of ["mb", "um"]) {
    const c = await imap(w.dc, user, ca);
    await c.messageDelete(`1:${DELETES}`);
    await c.logout();
  }
  // Where an incremental run's time goes (IMAP commands and state calls, ms waited).
  const phase = async (name: string) => {
    stateMs.clear(); mirrorCommandMs.clear();
    const r = await umRun();
    console.log(`mirror bench: umconnect ${name}: ${Math.round(r.ms)} ms in all, ms waiting on IMAP ${ms(mirrorCommandMs)}, on state ${ms(stateMs)}`);
    return r;
  };
  const mbDeletes = runMbsync(cfg);
  const umDeletes = await phase(`${DELETES} deletes`);
  await load(N, NEW);
  const mbNew = runMbsync(cfg);
  const umNew = await phase(`${NEW} new`);

  const expected = N - DELETES + NEW;
  const check = async (user: string) => {
    const [prod, backup] = await Promise.all([messageIds(w.dc, user, ca), messageIds(w.bc!, user, ca)]);
    const lost = prod.filter((id) => !backup.includes(id)).length;
    return { lost, duplicates: backup.length - new Set(backup).size, count: backup.length };
  };
  const [mbCheck, umCheck] = await Promise.all([check("mb"), check("um")]);
  const rssMb = process.resourceUsage().maxRSS / 1024;
  const setting = [N === 2000 ? "" : `UMC_BENCH_MIRROR_COUNT=${N} (default 2,000)`, BATCH ? `UMC_MIRROR_BATCH=${BATCH} (default 50)` : ""].filter(Boolean).join(", ") || undefined;
  console.log(`mirror bench: ${N} messages of ${size} bytes; mbsync ${mbInitial.toFixed(0)} / ${mbNoop.toFixed(0)} / ${mbDeletes.toFixed(0)} / ${mbNew.toFixed(0)} ms; umconnect ${umInitial.ms.toFixed(0)} / ${umNoop.ms.toFixed(0)} / ${umDeletes.ms.toFixed(0)} / ${umNew.ms.toFixed(0)} ms (initial, no-op, ${DELETES} deletes, ${NEW} new); no-op IMAP commands ${JSON.stringify(noopCommands)}; backups mb ${JSON.stringify(mbCheck)} um ${JSON.stringify(umCheck)}; expected ${expected}`);
  const fig = (name: string, value: number, unit: string, reference: number, better: Figure["better"]): Figure => ({ name, value, unit, reference, better, ...(setting ? { setting } : {}) });
  return [
    fig(`initial copy of ${N} messages (${Math.round(size / 1024)} KB), umconnect vs mbsync`, umInitial.ms, "ms", mbInitial, "lower"),
    fig("initial throughput, umconnect vs mbsync", (N / umInitial.ms) * 1000, "msg/s", (N / mbInitial) * 1000, "higher"),
    fig("no-op rerun, umconnect vs mbsync", umNoop.ms, "ms", mbNoop, "lower"),
    fig("no-op rerun: FETCH commands (CONDSTORE/QRESYNC, no listing)", noopFetches, "commands", 0, "equal"),
    fig(`${DELETES} deletes propagated, umconnect vs mbsync`, umDeletes.ms, "ms", mbDeletes, "lower"),
    fig(`${NEW} new messages, umconnect vs mbsync`, umNew.ms, "ms", mbNew, "lower"),
    fig("peak RSS of the bench process", rssMb, "MB", 256, "lower"),
    fig("umconnect backup: messages lost + duplicated", umCheck.lost + umCheck.duplicates + Math.abs(umCheck.count - expected), "messages", 0, "equal"),
    fig("mbsync backup: messages lost + duplicated (reference run sanity)", mbCheck.lost + mbCheck.duplicates + Math.abs(mbCheck.count - expected), "messages", 0, "equal"),
  ];
}
