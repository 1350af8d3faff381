/**
 * Crash injection as a real death (test/harness/crashRun.ts): a sync run in a child process
 * that SIGKILLs itself when its Nth write is answered. `crashRun` asserts that the crash fired
 * at exactly that write (the process died by SIGKILL and recorded write N); `countWrites`
 * runs the same scenario to completion in the same kind of process and returns how many
 * writes it made, which is the range of N the crash suites test.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { it } from "vitest";

export interface CrashJob {
  env: Record<string, string>;
  kind: "voicemail" | "contacts" | "calendar" | "mirror";
  linkId: string;
  /** Die when this write (1-based, counted across parallel actions) is answered. */
  crashAt?: number;
  report: string;
}

type Report = { crashedAt: number; write: string } | { completed: true; writes: number; names: string[] };

const script = fileURLToPath(new URL("./crashRun.ts", import.meta.url));

async function runChild(job: Omit<CrashJob, "report">): Promise<{ signal: NodeJS.Signals | null; code: number | null; report?: Report; stderr: string }> {
  const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "umc-crash-")), "report.json");
  const child = spawn(process.execPath, ["--import", "tsx", script, JSON.stringify({ ...job, report })], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => { stderr += c.toString("utf8"); });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once("exit", (c, s) => r([c, s])));
  const text = fs.existsSync(report) ? fs.readFileSync(report, "utf8") : undefined;
  fs.rmSync(path.dirname(report), { recursive: true, force: true });
  return { code, signal, report: text ? (JSON.parse(text) as Report) : undefined, stderr };
}

/** Runs the sync in a child that must die by SIGKILL right after write `n`; returns that write's name. */
export async function crashRun(job: Omit<CrashJob, "report" | "crashAt">, n: number): Promise<string> {
  const r = await runChild({ ...job, crashAt: n });
  if (r.report && "completed" in r.report) throw new Error(`the crash at write ${n} did not fire: the run completed after ${r.report.writes} writes`);
  if (r.signal !== "SIGKILL" || !r.report) throw new Error(`the worker did not die at write ${n} (exit ${r.code}, signal ${r.signal}):\n${r.stderr.slice(-2000)}`);
  if (r.report.crashedAt !== n) throw new Error(`the worker died at write ${r.report.crashedAt}, not ${n}`);
  return r.report.write;
}

/** Runs the sync to completion in a child; returns the writes it made, by name, in the order they were answered. */
export async function countWrites(job: Omit<CrashJob, "report" | "crashAt">): Promise<string[]> {
  const r = await runChild(job);
  if (r.code !== 0 || !r.report || !("completed" in r.report)) throw new Error(`the counting run failed (exit ${r.code}, signal ${r.signal}):\n${r.stderr.slice(-2000)}`);
  if (r.report.names.length !== r.report.writes) throw new Error("the counting run lost count");
  return r.report.names;
}

/** One crash case: a child process start (seconds of CPU when the machine is busy), runs and checks. */
export const CASE_TIMEOUT_MS = 300_000;

export interface CrashPhase<S extends { linkId: string }> {
  /** Names the phase in each case's title, e.g. "phase 1 (initial copy)". */
  title: string;
  /** The writes the counting run of this phase made (N runs from 1 to their number). */
  writes: readonly string[];
  /** A fresh scenario brought to where the phase's run starts (the counting run's state). */
  start(): Promise<S>;
  /** After the death: the restarted worker's run and every check. */
  restart(s: S): Promise<void>;
}

/**
 * The cases of one phase, for a suite's `describe.concurrent`: for every write N of the
 * counting run, a fresh scenario, the worker killed by SIGKILL right after write N (crashRun
 * asserts it died there), then the phase's restart and checks. One loop for every crash suite.
 */
export function crashAtEveryWrite<S extends { linkId: string }>(kind: CrashJob["kind"], env: Record<string, string>, phase: CrashPhase<S>, what: string): void {
  for (let n = 1; n <= phase.writes.length; n++) {
    it(`${phase.title}: dies at write ${n} of ${phase.writes.length}, restarts, ${what}`, async () => {
      const s = await phase.start();
      await crashRun({ env, kind, linkId: s.linkId }, n);
      await phase.restart(s);
    }, CASE_TIMEOUT_MS);
  }
}
