/**
 * A tiny IMAP server that answers logins as a given store would: the wordings real stores use
 * when they refuse a login (src/imap/loginAnswers.ts lists them with sources), and hostile
 * behaviour (garbage, silence, dropped connections, a watch that hangs mid-IDLE). It speaks
 * just enough IMAP4rev1 (RFC 3501: greeting, CAPABILITY, LOGIN, SELECT of an empty INBOX, NOOP,
 * LOGOUT; RFC 2177 IDLE) for a real imapflow client, and counts the connections it holds (per
 * logged-in user too), so tests can assert none leak.
 */
import net from "node:net";

export interface ScriptedImapOptions {
  /** The tagged answer to LOGIN after the tag, e.g. "NO [UNAVAILABLE] Temporary authentication failure." */
  loginAnswer?: string;
  /** Untagged lines sent before the tagged answer to LOGIN (e.g. a BYE). */
  beforeLoginAnswer?: string[];
  /** Instead of a greeting: bytes that are not IMAP, nothing at all, or a closed connection. */
  greeting?: "ok" | "garbage" | "silent" | "drop";
  /** What a user's IDLE meets after the "+" continuation (default "ok": DONE ends it): the
   *  store stops answering anything on that connection, closes it, or sends bytes that are
   *  not IMAP. */
  idle?: (user: string) => "ok" | "hang" | "drop" | "garbage";
  /** LOGINs of these users are never answered (a store whose authentication backend hangs:
   *  the greeting came, the login does not). */
  loginHangs?: (user: string) => boolean;
}

export interface ScriptedImap {
  host: string;
  port: number;
  /** Connections open right now (server side). */
  open(): number;
  /** Connections open right now that logged in as `user`. */
  openFor(user: string): number;
  /** LOGIN commands received so far (per user with an argument). */
  logins(user?: string): number;
  /** IDLE commands received so far per user. */
  idles(user: string): number;
  set(options: ScriptedImapOptions): void;
  stop(): Promise<void>;
}

export async function startScriptedImap(initial: ScriptedImapOptions = {}): Promise<ScriptedImap> {
  let options: ScriptedImapOptions = initial;
  const sockets = new Set<net.Socket>();
  const userOf = new Map<net.Socket, string>();
  const loginsBy = new Map<string, number>();
  const idlesBy = new Map<string, number>();
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  let logins = 0;
  const CAPS = "IMAP4rev1 IDLE";
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => { sockets.delete(s); userOf.delete(s); });
    s.on("error", () => undefined);
    const greeting = options.greeting ?? "ok";
    if (greeting === "drop") { s.destroy(); return; }
    if (greeting === "silent") return;
    if (greeting === "garbage") { s.write(Buffer.from("\x00\xff\xfe HTTP/1.1 400 Bad Request\r\n\x1b[2J}}}{{{\r\n", "latin1")); return; }
    s.write(`* OK [CAPABILITY ${CAPS}] scripted store ready\r\n`);
    let buf = "";
    let hung = false;
    let idleTag: string | undefined;
    s.on("data", (d) => {
      if (hung) return;
      buf += d.toString("latin1");
      for (let i = buf.indexOf("\r\n"); i >= 0 && !hung; i = buf.indexOf("\r\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (idleTag !== undefined) {
          // RFC 2177: the client ends IDLE with DONE; the server then completes the command.
          if (line.toUpperCase() === "DONE") { s.write(`${idleTag} OK IDLE terminated\r\n`); idleTag = undefined; }
          continue;
        }
        const [tag, cmd, arg] = line.split(" ");
        switch ((cmd ?? "").toUpperCase()) {
          case "CAPABILITY": s.write(`* CAPABILITY ${CAPS}\r\n${tag} OK CAPABILITY completed\r\n`); break;
          case "LSUB": s.write(`* LSUB () "/" INBOX\r\n${tag} OK LSUB completed\r\n`); break;
          case "LIST":
            // RFC 3501 section 6.3.8: an empty pattern asks for the hierarchy delimiter.
            s.write(/""\s*$/.test(line) ? `* LIST (\\Noselect) "/" ""\r\n` : `* LIST () "/" INBOX\r\n`);
            s.write(`${tag} OK LIST completed\r\n`);
            break;
          case "SELECT": case "EXAMINE":
            s.write(`* FLAGS (\\Seen \\Deleted)\r\n* 0 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 1] UIDs valid\r\n* OK [UIDNEXT 1] Predicted next UID\r\n${tag} OK [READ-WRITE] SELECT completed\r\n`);
            break;
          case "IDLE": {
            const user = userOf.get(s) ?? "";
            bump(idlesBy, user);
            s.write("+ idling\r\n");
            const then = options.idle?.(user) ?? "ok";
            if (then === "hang") hung = true;
            else if (then === "drop") s.destroy();
            else if (then === "garbage") s.write(Buffer.from("\x00\xff\xfe}}}{{{ not imap\r\n\x1b[2J\r\n", "latin1"));
            else idleTag = tag;
            break;
          }
          case "LOGIN":
            logins++;
            if (options.loginHangs?.((arg ?? "").replace(/^"|"$/g, ""))) { hung = true; break; }
            if (!options.loginAnswer || /^OK/i.test(options.loginAnswer)) {
              // LOGIN user password (RFC 3501 section 6.2.3); quoted or atom.
              const user = (arg ?? "").replace(/^"|"$/g, "");
              userOf.set(s, user);
              bump(loginsBy, user);
            }
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
    openFor: (user) => [...userOf.values()].filter((u) => u === user).length,
    logins: (user) => (user === undefined ? logins : loginsBy.get(user) ?? 0),
    idles: (user) => idlesBy.get(user) ?? 0,
    set: (o) => { options = o; },
    stop: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}
