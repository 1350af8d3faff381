/** Plays the voice system and the Outlook user against a running `npm start` stack. */
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ImapFlow } from "imapflow";
import { avayaVoiceMessage } from "../test/fixtures/voicemail.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
// Screenshots of the status pages need no running stack: they start their own world.
if (process.argv[2] === "screenshots") { await import("./screenshots.js"); process.exit(0); }
const stackFile = path.join(root, ".local", "stack.json");
if (!fs.existsSync(stackFile)) { console.error("no local stack is running: start it with `npm start`"); process.exit(1); }
const stack = JSON.parse(fs.readFileSync(stackFile, "utf8")) as { sim: string; imap: { host: string; port: number; conf: string }; users: Record<string, string> };
const [cmd, who, n] = process.argv.slice(2);
const userId = (name: string | undefined) => { const id = name && stack.users[name]; if (!id) throw new Error(`unknown user ${name}; try alice or bob`); return id; };
const sim = async (p: string, method = "GET") => { const r = await fetch(`${stack.sim}${p}`, { method }); if (!r.ok) throw new Error(`${r.status} ${await r.text()}`); return r.status === 204 ? undefined : r.json(); };

switch (cmd) {
  case "deposit": {
    execFileSync("/usr/lib/dovecot/dovecot-lda", ["-c", stack.imap.conf, "-d", who ?? "4711", "-f", "voicemail@pbx.example.test"], { input: avayaVoiceMessage({ id: `cli-${Date.now()}`, caller: "Demo Caller", seconds: 9 }) });
    console.log(`voicemail left for ${who ?? "4711"}`);
    break;
  }
  case "outlook": {
    const r = (await sim(`/_sim/users/${userId(who)}/messages`)) as { value: Array<{ subject: string; isRead: boolean; receivedDateTime: string }> };
    r.value.forEach((m, i) => console.log(`${i + 1}. ${m.isRead ? "read  " : "UNREAD"} ${m.receivedDateTime} ${m.subject}`));
    if (!r.value.length) console.log("(empty)");
    break;
  }
  case "read": case "unread": case "delete": {
    const r = (await sim(`/_sim/users/${userId(who)}/messages`)) as { value: Array<{ id: string }> };
    const m = r.value[Number(n ?? "1") - 1];
    if (!m) throw new Error("no such message");
    await sim(`/_sim/users/${userId(who)}/messages/${m.id}/${cmd}`, "POST");
    console.log(`${cmd} done in Outlook`);
    break;
  }
  case "store": {
    const c = new ImapFlow({ host: stack.imap.host, port: stack.imap.port, secure: false, auth: { user: who ?? "4711", pass: `pw-${who ?? "4711"}` }, logger: false });
    await c.connect(); await c.mailboxOpen("INBOX");
    for await (const m of c.fetch("1:*", { uid: true, flags: true, envelope: true })) console.log(`uid ${m.uid} ${m.flags?.has("\\Seen") ? "seen  " : "UNSEEN"} ${m.envelope?.subject ?? ""}`);
    await c.logout();
    break;
  }
  default:
    console.log("usage: npm run demo -- deposit <mailbox> | outlook <alice|bob> | read|unread|delete <alice|bob> <n> | store <mailbox> | screenshots");
}
