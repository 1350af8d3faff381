/**
 * `npm start`: the whole connector on one machine. Azurite, a private Dovecot voice store
 * (voice mailboxes 4711 and 4712), the Graph simulator (Outlook mailboxes alice@ and bob@),
 * and the dev host serving the real function list. It then shows one voicemail making the
 * round trip, and stays up for you to play with (scripts/demo.ts) until Ctrl-C.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import { ADMIN_TOKEN, TENANT, startWorld } from "../test/e2e/world.js";
import { avayaVoiceMessage } from "../test/fixtures/voicemail.js";
import { createLogger } from "../src/log.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const free = (port: number) => new Promise<boolean>((r) => { const s = net.createServer().once("error", () => r(false)).listen(port, "127.0.0.1", () => s.close(() => r(true))); });
const pick = async (port: number) => ((await free(port)) ? port : 0);

const azurite = (await free(10000)) && (await free(10001)) && (await free(10002)) ? { blob: 10000, queue: 10001, table: 10002 } : undefined;
const world = await startWorld({
  users: ["4711", "4712"],
  sim: { port: await pick(8443) },
  ports: { azurite, host: await pick(7071), imap: await pick(1143) },
  fastReadSeconds: 2,
  logger: createLogger({ level: process.env.UMC_LOG_LEVEL === "debug" ? "debug" : "warn" }),
});
const alice = await world.link("4711", "alice@contoso.test");
const bob = await world.link("4712", "bob@contoso.test");

fs.mkdirSync(path.join(root, ".local"), { recursive: true });
const stackFile = path.join(root, ".local", "stack.json");
fs.writeFileSync(stackFile, JSON.stringify({ sim: world.sim.origin, host: world.host.url, imap: { host: world.dc.host, port: world.dc.port, conf: world.dc.conf }, users: { alice: alice.userId, bob: bob.userId } }, null, 2), { mode: 0o600 });

const say = (s: string) => process.stdout.write(s + "\n");
say(`
umconnect local stack is up
  dev host (functions)   ${world.host.url}/api/health
  admin status           ${world.host.url}/api/admin/status?format=html   (header Authorization: Bearer ${ADMIN_TOKEN}; local token)
  admin consent link     ${world.host.url}/api/admin/consent/start?tenant=${TENANT}
  Graph simulator        ${world.sim.origin}   (control API under /_sim/)
  voice store (IMAP)     ${world.dc.host}:${world.dc.port}   mailboxes 4711 (pw-4711) and 4712 (pw-4712), plaintext, lab only
  Azurite                ${world.az.connectionString.replace(/AccountKey=[^;]+/, "AccountKey=<dev key>")}
  links                  4711 <-> alice@contoso.test, 4712 <-> bob@contoso.test
`);

// The round trip, narrated.
const t0 = Date.now();
await new Promise((r) => setTimeout(r, 1500)); // first sync + subscription
await world.dc.lda("4711", avayaVoiceMessage({ id: `demo-${Date.now()}`, caller: "Ann Lee", seconds: 12 }));
say("1. left a voice message for 4711 (Dovecot LDA, as the voice system would)");
const waitFor = async <T>(what: () => T | undefined, ms = 15_000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) { const v = what(); if (v) return v; if (Date.now() > end) throw new Error("timed out"); await new Promise((r) => setTimeout(r, 50)); }
};
const copy = await waitFor(() => world.sim.outlook(alice.userId).messages("inbox")[0]);
say(`2. it is in alice's Outlook inbox after ${Date.now() - t0 - 1500} ms: "${copy.subject}", ${copy.attachments.map((a) => `${a.name} ${a.size} B`).join(", ")}, read=${copy.isRead}, draft=${copy.isDraft}`);
const t1 = Date.now();
world.sim.outlook(alice.userId).markRead(copy.id);
say("3. alice reads it in Outlook");
const c = await world.imap("4711");
let seen = false;
for (let i = 0; i < 300 && !seen; i++) {
  const m = await c.fetchOne("*", { flags: true });
  seen = m !== false && (m.flags?.has("\\Seen") ?? false);
  if (!seen) await new Promise((r) => setTimeout(r, 50));
}
await c.logout();
say(seen ? `4. \\Seen is set on the voice store after ${Date.now() - t1} ms: the message-waiting lamp goes off` : "4. \\Seen did not arrive in time (see the log)");
say(`
Try it yourself (in another terminal):
  npm run demo -- deposit 4712          leave a voicemail for bob
  npm run demo -- outlook bob           list bob's Outlook inbox
  npm run demo -- read bob 1            mark bob's first message read in Outlook
  npm run demo -- store 4712            show the voice store's flags
Ctrl-C stops everything.`);

const stop = async () => { await world.stop(); fs.rmSync(stackFile, { force: true }); process.exit(0); };
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());
if (process.argv.includes("--once")) await stop();
