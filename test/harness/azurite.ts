/**
 * Azurite in memory on random loopback ports. `--skipApiVersionCheck` is required because
 * @azure/storage-queue 12.30 sends an x-ms-version newer than Azurite 3.35 knows
 * (shared/reference/env-recipes.md section 2).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
/** Azurite's documented, public development account key (not a secret). */
export const AZURITE_ACCOUNT = "devstoreaccount1";
export const AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface AzuriteHandle {
  connectionString: string;
  ports: { blob: number; queue: number; table: number };
  stop(): Promise<void>;
}

export async function startAzurite(options: { ports?: { blob: number; queue: number; table: number } } = {}): Promise<AzuriteHandle> {
  const bin = require.resolve("azurite/dist/src/azurite.js");
  const want = options.ports ?? { blob: 0, queue: 0, table: 0 };
  const proc: ChildProcess = spawn(process.execPath, [bin, "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--silent",
    "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
    "--blobPort", String(want.blob), "--queuePort", String(want.queue), "--tablePort", String(want.table)],
    { stdio: ["ignore", "pipe", "pipe"] });
  const ports: Record<string, number> = {};
  await new Promise<void>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("azurite did not start within 20 s:\n" + out)), 20_000);
    proc.once("exit", (code) => { clearTimeout(timer); reject(new Error(`azurite exited with ${code}:\n${out}`)); });
    const onData = (d: Buffer) => {
      out += d.toString();
      for (const m of out.matchAll(/Azurite (Blob|Queue|Table) service is successfully listening at http:\/\/127\.0\.0\.1:(\d+)/g)) ports[m[1]!.toLowerCase()] = Number(m[2]);
      if (ports.blob && ports.queue && ports.table) { clearTimeout(timer); proc.removeAllListeners("exit"); resolve(); }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData);
  });
  const A = AZURITE_ACCOUNT;
  const connectionString = `DefaultEndpointsProtocol=http;AccountName=${A};AccountKey=${AZURITE_KEY};BlobEndpoint=http://127.0.0.1:${ports.blob}/${A};QueueEndpoint=http://127.0.0.1:${ports.queue}/${A};TableEndpoint=http://127.0.0.1:${ports.table}/${A};`;
  return {
    connectionString,
    ports: { blob: ports.blob!, queue: ports.queue!, table: ports.table! },
    stop: () => new Promise<void>((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.once("exit", () => resolve());
      proc.kill("SIGKILL");
    }),
  };
}
