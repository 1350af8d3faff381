/**
 * Starts scripts/instance.ts (one more function-app instance) as a child process with the
 * world's UMC_* settings, and keeps everything it logs so suites can scan it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export interface Instance {
  pid: number;
  /** Every line the instance wrote (stdout and stderr). */
  lines: string[];
  /** SIGKILL: the process dies mid-step, as a host crash or a scale-in would kill it. */
  kill(): Promise<void>;
  /** SIGTERM: finishes its runs and reports its peak RSS. */
  stop(): Promise<{ peakRssBytes?: number }>;
}

const script = fileURLToPath(new URL("../../scripts/instance.ts", import.meta.url));

export async function startInstance(env: Record<string, string>, extra: Record<string, string> = {}, startTimeoutMs = 30_000): Promise<Instance> {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", script], {
    env: { ...process.env, ...env, ...extra },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const partial = { out: "", err: "" };
  const collect = (which: "out" | "err") => (chunk: Buffer) => {
    const text = partial[which] + chunk.toString("utf8");
    const parts = text.split("\n");
    partial[which] = parts.pop() ?? "";
    lines.push(...parts.filter(Boolean));
  };
  child.stdout!.on("data", collect("out"));
  child.stderr!.on("data", collect("err"));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`instance did not start:\n${lines.join("\n")}`)), startTimeoutMs);
    const check = setInterval(() => {
      if (lines.some((l) => l.includes('"ready":true'))) { clearInterval(check); clearTimeout(timer); resolve(); }
      if (child.exitCode !== null) { clearInterval(check); clearTimeout(timer); reject(new Error(`instance exited ${child.exitCode}:\n${lines.join("\n")}`)); }
    }, 50);
  });
  return {
    pid: child.pid!,
    lines,
    async kill() {
      if (child.exitCode === null) child.kill("SIGKILL");
      await exited;
    },
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
      const last = [...lines].reverse().find((l) => l.includes("peakRssBytes"));
      return last ? (JSON.parse(last) as { peakRssBytes?: number }) : {};
    },
  };
}
