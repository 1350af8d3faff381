/**
 * A tiny IMAP server that answers logins as a given store would: the wordings real stores use
 * when they refuse a login (src/imap/loginAnswers.ts lists them with sources), and hostile
 * behaviour (garbage, silence, dropped connections). It speaks just enough IMAP4rev1
 * (RFC 3501: greeting, CAPABILITY, LOGIN, NOOP, LOGOUT) for a real imapflow client, and counts
 * the connections it holds, so tests can assert none leak.
 */
import net from "node:net";

export interface ScriptedImapOptions {
  /** The tagged answer to LOGIN after the tag, e.g. "NO [UNAVAILABLE] Temporary authentication failure." */
  loginAnswer?: string;
  /** Untagged lines sent before the tagged answer to LOGIN (e.g. a BYE). */
  beforeLoginAnswer?: string[];
  /** Instead of a greeting: bytes that are not IMAP, nothing at all, or a closed connection. */
  greeting?: "ok" | "garbage" | "silent" | "drop";
}

export interface ScriptedImap {
  host: string;
  port: number;
  /** Connections open right now (server side). */
  open(): number;
  /** LOGIN commands received so far. */
  logins(): number;
  set(options: ScriptedImapOptions): void;
  stop(): Promise<void>;
}

export async function startScriptedImap(initial: ScriptedImapOptions = {}): Promise<ScriptedImap> {
  let options: ScriptedImapOptions = initial;
  const sockets = new Set<net.Socket>();
  let logins = 0;
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => undefined);
    const greeting = options.greeting ?? "ok";
    if (greeting === "drop") { s.destroy(); return; }
    if (greeting === "silent") return;
    if (greeting === "garbage") { s.write(Buffer.from("\x00\xff\xfe HTTP/1.1 400 Bad Request\r\n\x1b[2J}}}{{{\r\n", "latin1")); return; }
    s.write("* OK [CAPABILITY IMAP4rev1] scripted store ready\r\n");
    let buf = "";
    s.on("data", (d) => {
      buf += d.toString("latin1");
      for (let i = buf.indexOf("\r\n"); i >= 0; i = buf.indexOf("\r\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const [tag, cmd] = line.split(" ");
        switch ((cmd ?? "").toUpperCase()) {
          case "CAPABILITY": s.write(`* CAPABILITY IMAP4rev1\r\n${tag} OK CAPABILITY completed\r\n`); break;
          case "LOGIN":
            logins++;
            for (const l of options.beforeLoginAnswer ?? []) s.write(`${l}\r\n`);
            s.write(`${tag} ${options.loginAnswer ?? "OK LOGIN completed"}\r\n`);
            if (/^\* BYE/.test((options.beforeLoginAnswer ?? []).join("\n"))) s.end();
            break;
          case "NOOP": s.write(`${tag} OK NOOP completed\r\n`); break;
          case "LOGOUT": s.write(`* BYE logging out\r\n${tag} OK LOGOUT completed\r\n`); s.end(); break;
          default: s.write(`${tag} BAD unknown command\r\n`);
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    host: "127.0.0.1",
    port: (server.address() as net.AddressInfo).port,
    open: () => sockets.size,
    logins: () => logins,
    set: (o) => { options = o; },
    stop: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}
