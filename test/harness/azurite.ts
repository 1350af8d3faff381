/**
 * Azurite in memory on random loopback ports (or on disk, when a suite restarts it). `--skipApiVersionCheck` is required because
 * @azure/storage-queue 12.30 sends an x-ms-version newer than Azurite 3.35 knows
 * (shared/reference/env-recipes.md section 2).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const require = createRequire(import.meta.url);
/** Azurite's documented, public development account key (not a secret). */
export const AZURITE_ACCOUNT = "devstoreaccount1";
export const AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface AzuriteHandle {
  connectionString: string;
  ports: { blob: number; queue: number; table: number };
  stop(): Promise<void>;
  /** Only with `persistent`: stops gracefully (data saved) and starts again on the same ports
   *  after `downMs` (the state store unavailable for a while). */
  restart(downMs: number): Promise<void>;
  /** SIGSTOP / SIGCONT: storage paused (requests hang, nothing answers) and resumed. */
  pause(): void;
  resume(): void;
}

type Ports = { blob: number; queue: number; table: number };

export async function startAzurite(options: { ports?: Ports; persistent?: boolean } = {}): Promise<AzuriteHandle> {
  const location = options.persistent ? fs.mkdtempSync(path.join(os.tmpdir(), "umc-azurite-")) : undefined;
  let { proc, ports } = await launch(options.ports ?? { blob: 0, queue: 0, table: 0 }, location);
  const A = AZURITE_ACCOUNT;
  const connectionString = `DefaultEndpointsProtocol=http;AccountName=${A};AccountKey=${AZURITE_KEY};BlobEndpoint=http://127.0.0.1:${ports.blob}/${A};QueueEndpoint=http://127.0.0.1:${ports.queue}/${A};TableEndpoint=http://127.0.0.1:${ports.table}/${A};`;
  const exit = (signal: NodeJS.Signals) => new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once("exit", () => resolve());
    proc.kill(signal);
  });
  return {
    connectionString,
    ports,
    stop: async () => {
      await exit("SIGKILL");
      if (location) fs.rmSync(location, { recursive: true, force: true });
    },
    pause: () => { proc.kill("SIGSTOP"); },
    resume: () => { proc.kill("SIGCONT"); },
    restart: async (downMs) => {
      if (!location) throw new Error("restart needs a persistent Azurite");
      await exit("SIGTERM"); // Azurite saves its metadata on a graceful stop
      await new Promise((r) => setTimeout(r, downMs));
      ({ proc } = await launch(ports, location));
    },
  };
}

async function launch(want: Ports, location: string | undefined): Promise<{ proc: ChildProcess; ports: Ports }> {
  const bin = require.resolve("azurite/dist/src/azurite.js");
  // Point operations by their full key, as Azure serves them: see azuritePointReads.cjs.
  const proc: ChildProcess = spawn(process.execPath, ["--require", require.resolve("./azuritePointReads.cjs"), bin, ...(location ? ["--location", location] : ["--inMemoryPersistence"]), "--disableTelemetry", "--skipApiVersionCheck", "--silent",
    "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
    "--blobPort", String(want.blob), "--queuePort", String(want.queue), "--tablePort", String(want.table)],
    { stdio: ["ignore", "pipe", "pipe"] });
  const ports: Record<string, number> = {};
  await new Promise<void>((resolve, reject) => {
    let out = "";
    // Generous: on the shared, loaded test machine a cold Node start alone can take tens of seconds.
    const timer = setTimeout(() => reject(new Error("azurite did not start within 60 s:\n" + out)), 60_000);
    const early = (code: number | null) => { clearTimeout(timer); reject(new Error(`azurite exited with ${code}:\n${out}`)); };
    proc.once("exit", early);
    const onData = (d: Buffer) => {
      out += d.toString();
      for (const m of out.matchAll(/Azurite (Blob|Queue|Table) service is successfully listening at http:\/\/127\.0\.0\.1:(\d+)/g)) ports[m[1]!.toLowerCase()] = Number(m[2]);
      if (ports.blob && ports.queue && ports.table) { clearTimeout(timer); proc.off("exit", early); resolve(); }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData);
  });
  return { proc, ports: { blob: ports.blob!, queue: ports.queue!, table: ports.table! } };
}
