/**
 * A TCP proxy in front of Azurite's table and queue ports, for storage that is healthy, slow or
 * down as seen from the connector (webhook deadline tests and `npm run bench -- webhook`):
 *  - healthy: bytes pass through;
 *  - slow: each request written by the client is held `delayMs` before it reaches Azurite
 *    (one storage call = one request, so about `delayMs` per call);
 *  - down: nothing answers (connections are accepted and never served: the worst outage for a
 *    caller without a deadline, which a refused connection plus SDK retries only resembles).
 */
import net from "node:net";
import type { AddressInfo } from "node:net";

export type StorageMode = { kind: "healthy" } | { kind: "slow"; delayMs: number } | { kind: "down" };

export interface StorageProxy {
  /** The Azurite connection string with table and queue endpoints through the proxy. */
  connectionString: string;
  setMode(mode: StorageMode): void;
  stop(): Promise<void>;
}

export async function startStorageProxy(azuriteConnectionString: string): Promise<StorageProxy> {
  let mode: StorageMode = { kind: "healthy" };
  const sockets = new Set<net.Socket>();
  const servers: net.Server[] = [];
  const forward = async (targetPort: number): Promise<number> => {
    const server = net.createServer((client) => {
      sockets.add(client);
      client.on("close", () => sockets.delete(client));
      client.on("error", () => undefined);
      if (mode.kind === "down") return; // accepted, never served
      const upstream = net.connect(targetPort, "127.0.0.1");
      sockets.add(upstream);
      upstream.on("close", () => { sockets.delete(upstream); client.destroy(); });
      upstream.on("error", () => client.destroy());
      client.on("close", () => upstream.destroy());
      upstream.pipe(client);
      // In order, each chunk after the mode's delay (a chunk is one request for small calls).
      let chain = Promise.resolve();
      client.on("data", (chunk) => {
        const m = mode;
        chain = chain.then(async () => {
          if (m.kind === "down" || mode.kind === "down") return; // swallowed: the call hangs
          if (m.kind === "slow") await new Promise((r) => setTimeout(r, m.delayMs));
          if (!upstream.destroyed) upstream.write(chunk);
        });
      });
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    return (server.address() as AddressInfo).port;
  };
  let cs = azuriteConnectionString;
  for (const name of ["TableEndpoint", "QueueEndpoint"]) {
    const m = new RegExp(`${name}=http://127\\.0\\.0\\.1:(\\d+)`).exec(cs);
    if (!m) throw new Error(`no ${name} in the connection string`);
    const port = await forward(Number(m[1]));
    cs = cs.replace(m[0], `${name}=http://127.0.0.1:${port}`);
  }
  return {
    connectionString: cs,
    setMode: (m) => {
      mode = m;
      if (m.kind === "down") for (const s of sockets) s.destroy(); // open keep-alive connections die too
    },
    stop: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}
