/**
 * A private Dovecot 2.3 (not a system service) per test suite: temp dir, loopback port,
 * passwd-file users, a master user (`user*master`, also SASL PLAIN authzid), maildir,
 * CONDSTORE/QRESYNC (built in), IMAP METADATA, optional Lua push notifications to a local URL,
 * and an LDA delivery helper. Verified recipe: shared/reference/env-recipes.md section 3.
 * Needs `apt-get install dovecot-imapd` and root (mail files are owned by uid 65534).
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export interface DovecotOptions {
  users: Record<string, string>;
  master?: { user: string; pass: string };
  /** No master user at all: every user logs in with their own password (Cisco Unity Connection style). */
  noMasterUser?: boolean;
  /** Fixed port (local stack); random when omitted. */
  port?: number;
  /**
   * Lua push: every APPEND / LDA delivery / flag change / expunge POSTs JSON here. With
   * `secret`, requests are signed like src/webhooks/storeNotifications.ts expects.
   */
  push?: { url: string; secret?: string; headerName?: string; headerValue?: string; /** Signs "<ts>.<endpointId>.push.<body>" (src/security/endpointSecrets.ts). */ endpointId?: string };
  /** Implicit TLS (IMAPS) with this key and certificate instead of plaintext; with `starttls`,
   *  the plain IMAP port instead, TLS required through STARTTLS (RFC 3501 section 6.2.1). */
  tls?: { keyPath: string; certPath: string; starttls?: boolean };
  /** Caps concurrent connections per user+IP (connection-limit tests). */
  maxUserIpConnections?: number;
  extraConf?: string;
  dir?: string;
}

export interface DovecotHandle {
  host: string;
  port: number;
  dir: string;
  conf: string;
  master: { user: string; pass: string };
  /**
   * Deliver a raw RFC 5322 message through dovecot-lda (as an MTA would). Asynchronous on
   * purpose: with push enabled, LDA POSTs to a receiver that may live in this very process.
   */
  lda(user: string, raw: string | Buffer, folder?: string): Promise<void>;
  /**
   * Run doveadm. Asynchronous on purpose, like lda: an expunge or flag change pushes to a
   * receiver that may live in this very process; a synchronous child would block the event loop
   * that must answer that push, and the Lua client gives up after its timeout (the push lost).
   */
  doveadm(...args: string[]): Promise<string>;
  /**
   * The store's side of a password change for the master user (an admin changed or expired
   * it). Resolves once Dovecot answers with it: passwd-file is re-read only when its mtime or
   * size changed, and stat()ed at most once per second (Dovecot src/auth/db-passwd-file.c,
   * passwd_file_sync), so a login in the same second would still see the old password.
   * `master.pass` stays what the app's secret is meant to hold.
   */
  setMasterPassword(pass: string): Promise<void>;
  /** Kill and start again on the same port and mail dir (a voice store restarting). */
  restart(): Promise<void>;
  /** Kill the server but keep the mail (start again with restart()). */
  kill(): Promise<void>;
  stop(): Promise<void>;
  log(): string;
}

export const DOVECOT_BIN = "/usr/sbin/dovecot";

export function dovecotAvailable(): boolean {
  return fs.existsSync(DOVECOT_BIN);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => { s.end(); resolve(true); });
    s.on("error", () => resolve(false));
  });
}

/**
 * Lua push driver (dovecot-core's push_notification_lua, with Dovecot's built-in HTTP client).
 * Events: MessageNew (LDA), MessageAppend (IMAP APPEND), FlagsSet/FlagsClear, MessageExpunge.
 * The POST is synchronous inside the delivering process, so the receiver must answer fast.
 */
function pushLua(push: NonNullable<DovecotOptions["push"]>): string {
  const header = push.headerName ? `req:add_header(${JSON.stringify(push.headerName)}, ${JSON.stringify(push.headerValue ?? "")})` : "";
  const sign = push.secret
    ? `local ts = tostring(os.time())
  req:add_header("x-umc-timestamp", ts)
  req:add_header("x-umc-signature", "sha256=" .. umc_hmac_sha256_hex(${JSON.stringify(push.secret)}, ts .. "." .. ${push.endpointId ? `${JSON.stringify(push.endpointId)} .. ".push." .. ` : ""}body))`
    : "";
  const hmac = push.secret ? fs.readFileSync(new URL("./hmac-sha256.lua", import.meta.url), "utf8") : "";
  return `${hmac}
local client = dovecot.http.client({ timeout = 2000, max_attempts = 2 })
local function esc(s) return (tostring(s or ""):gsub('[%c"\\\\]', function(c) return string.format("\\\\u%04x", string.byte(c)) end)) end
function dovecot_lua_notify_begin_txn(user) return { user = user.username, events = {} } end
local function add(ctx, ev, kind)
  table.insert(ctx.events, string.format('{"event":"%s","user":"%s","mailbox":"%s","uid":%d,"uidvalidity":%d}',
    kind, esc(ctx.user), esc(ev.mailbox), ev.uid or 0, ev.uid_validity or 0))
end
function dovecot_lua_notify_event_message_new(ctx, ev) add(ctx, ev, "MessageNew") end
function dovecot_lua_notify_event_message_append(ctx, ev) add(ctx, ev, "MessageAppend") end
function dovecot_lua_notify_event_flags_set(ctx, ev) add(ctx, ev, "FlagsSet") end
function dovecot_lua_notify_event_flags_clear(ctx, ev) add(ctx, ev, "FlagsClear") end
function dovecot_lua_notify_event_message_expunge(ctx, ev) add(ctx, ev, "MessageExpunge") end
function dovecot_lua_notify_end_txn(ctx, success)
  if not success or #ctx.events == 0 then return end
  local body = '{"events":[' .. table.concat(ctx.events, ",") .. ']}'
  local req = client:request({ url = ${JSON.stringify(push.url)}, method = "POST" })
  req:add_header("content-type", "application/json")
  ${header}
  ${sign}
  req:set_payload(body)
  req:submit()
end
`;
}

export async function startDovecot(options: DovecotOptions): Promise<DovecotHandle> {
  if (!dovecotAvailable()) throw new Error(`${DOVECOT_BIN} not found: apt-get install -y dovecot-imapd`);
  const master = options.master ?? { user: "umcmaster", pass: "master-" + Math.random().toString(36).slice(2) };
  const D = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "umc-dovecot-"));
  fs.mkdirSync(D, { recursive: true });
  fs.chmodSync(D, 0o755); // mkdtemp makes 0700; the mail uid 65534 must traverse it
  const port = options.port ?? (await freePort());
  for (const d of ["run", "state", "mail", "attr"]) fs.mkdirSync(path.join(D, d), { recursive: true });
  fs.chownSync(path.join(D, "mail"), 65534, 65534);
  fs.chownSync(path.join(D, "attr"), 65534, 65534);
  const users = path.join(D, "users");
  const writeUsers = (all: Record<string, string>) =>
    fs.writeFileSync(users, Object.entries(all).map(([u, p]) => `${u}:{PLAIN}${p}:65534:65534::${D}/mail/${u}::`).join("\n") + "\n");
  writeUsers(options.users);
  fs.writeFileSync(path.join(D, "masters"), `${master.user}:{PLAIN}${master.pass}\n`);
  let pushConf = "";
  if (options.push) {
    const lua = path.join(D, "push.lua");
    fs.writeFileSync(lua, pushLua(options.push));
    pushConf = `protocol imap {
  mail_plugins = $mail_plugins mail_lua notify push_notification push_notification_lua
}
protocol lda {
  mail_plugins = $mail_plugins mail_lua notify push_notification push_notification_lua
}
# An administrator's doveadm expunge or flag change pushes too, as on a real store: without it a
# test that empties a mailbox with doveadm would wait for a run that nothing started.
protocol doveadm {
  mail_plugins = $mail_plugins mail_lua notify push_notification push_notification_lua
}
plugin {
  push_notification_driver = lua:file=${lua}
}
`;
  }
  const conf = path.join(D, "dovecot.conf");
  fs.writeFileSync(conf, `instance_name = umc${port}
base_dir = ${D}/run
state_dir = ${D}/state
protocols = imap
listen = 127.0.0.1
${options.tls ? `ssl = required
ssl_cert = <${options.tls.certPath}
ssl_key = <${options.tls.keyPath}` : "ssl = no"}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_fsync = never
log_path = ${D}/dovecot.log
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
last_valid_uid = 0
mail_location = maildir:${D}/mail/%n
imap_metadata = yes
mail_attribute_dict = file:${D}/attr/%n
${options.noMasterUser ? "" : `auth_master_user_separator = *
passdb {
  driver = passwd-file
  args = scheme=PLAIN ${D}/masters
  master = yes
  result_success = continue
}
`}passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n ${users}
}
userdb {
  driver = passwd-file
  args = username_format=%n ${users}
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${options.tls && !options.tls.starttls ? 0 : port}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${options.tls && !options.tls.starttls ? port : 0}
    ssl = ${options.tls && !options.tls.starttls ? "yes" : "no"}
  }
}
protocol imap {
  mail_max_userip_connections = ${options.maxUserIpConnections ?? 1000}
}
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
  unix_listener stats-reader {
    mode = 0666
  }
}
${pushConf}
${options.extraConf ?? ""}
`);

  let proc: ChildProcess | undefined;
  const start = async () => {
    // Own process group, so kill() takes the imap/auth children down with the master, as a
    // real restart or crash of the voice store does.
    proc = spawn(DOVECOT_BIN, ["-F", "-c", conf], { stdio: "ignore", detached: true });
    for (let i = 0; ; i++) {
      if (await canConnect(port)) return;
      if (proc.exitCode !== null || i > 400) {
        const log = fs.existsSync(path.join(D, "dovecot.log")) ? fs.readFileSync(path.join(D, "dovecot.log"), "utf8") : "";
        throw new Error(`dovecot did not start on port ${port}:\n${log.slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  // SIGKILL: the children exit at once when the master dies; SIGTERM takes 1-6 s.
  const kill = () => new Promise<void>((resolve) => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once("exit", () => resolve());
    try { process.kill(-p.pid!, "SIGKILL"); } catch { p.kill("SIGKILL"); }
  });
  await start();

  return {
    host: "127.0.0.1",
    port,
    dir: D,
    conf,
    master,
    lda: (user, raw, folder) =>
      new Promise<void>((resolve, reject) => {
        const child = execFile("/usr/lib/dovecot/dovecot-lda", ["-c", conf, "-d", user, "-f", "voicemail@pbx.example.test", ...(folder ? ["-m", folder] : [])],
          (err, _stdout, stderr) => (err ? reject(new Error(`dovecot-lda failed for ${user}: ${stderr || err.message}`)) : resolve()));
        child.stdin!.end(raw);
      }),
    doveadm: (...args) =>
      new Promise<string>((resolve, reject) => {
        execFile("/usr/bin/doveadm", ["-c", conf, ...args], (err, stdout, stderr) => (err ? reject(new Error(`doveadm ${args.join(" ")} failed: ${stderr || err.message}`)) : resolve(stdout)));
      }),
    setMasterPassword: async (pass: string) => {
      const file = path.join(D, "masters");
      const before = Math.floor(fs.statSync(file).mtimeMs / 1000);
      fs.writeFileSync(file, `${master.user}:{PLAIN}${pass}\n`);
      // Same length and same second as before would look unchanged: move the mtime on.
      const stamp = Math.max(before + 1, Math.floor(Date.now() / 1000));
      fs.utimesSync(file, stamp, stamp);
      await new Promise((r) => setTimeout(r, 1100));
    },
    restart: async () => {
      await kill();
      // wait until the port is free again before the new master binds it
      for (let i = 0; i < 200 && (await canConnect(port)); i++) await new Promise((r) => setTimeout(r, 10));
      await start();
    },
    kill,
    stop: async () => {
      await kill();
      if (!options.dir) fs.rmSync(D, { recursive: true, force: true });
    },
    log: () => (fs.existsSync(path.join(D, "dovecot.log")) ? fs.readFileSync(path.join(D, "dovecot.log"), "utf8") : ""),
  };
}
