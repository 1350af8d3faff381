/**
 * Lockout protection end to end (queue -> syncWorker -> gate -> Dovecot): the store stops
 * accepting the super user's password. Runs for every link keep being triggered (as the poll
 * and fast-check timers would), yet the store sees exactly one login attempt per backoff
 * window across all links, one alert names the endpoint (none per link), and syncing resumes
 * as soon as the secret is changed to the store's new password, or, when the store was fixed
 * instead, as soon as `umconnect endpoint test` succeeds.
 */
import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, ENDPOINT, type World } from "./world.js";
import { enqueueSync } from "../../src/app/syncQueue.js";
import { statusReport } from "../../src/admin/status.js";
import { storeAccessState } from "../../src/app/credentials.js";
import { main } from "../../src/cli/main.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";

const RETRY_SECONDS = 4;
const USERS = ["7101", "7102", "7103"];
let w: World;
const users: Record<string, string> = {};
let savedEnv: NodeJS.ProcessEnv;

/** Our side: the password the endpoint's secret holds (the local secrets file here). */
function setSecret(pass: string): void {
  const file = w.env.UMC_SECRETS_FILE!;
  const j = JSON.parse(fs.readFileSync(file, "utf8")) as { endpoints: Array<{ auth: { password: string } }> };
  j.endpoints[0]!.auth.password = pass;
  fs.writeFileSync(file, JSON.stringify(j), { mode: 0o600 });
  w.deps.reloadDirectory();
}
/** Login failures Dovecot logged, with their second. */
function failedLogins(): Array<{ at: number; line: string }> {
  // "Nov 30 14:10:07 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 1 secs): user=<umcmaster>, method=PLAIN, ..."
  return w.dc.log().split("\n").filter((l) => /auth failed/.test(l) && l.includes(`user=<${w.dc.master.user}>`) || l.includes(`*${w.dc.master.user}>`))
    .map((line) => ({ line, at: Date.parse(`${line.slice(0, 15)} ${new Date().getFullYear()}`) }));
}
/** Triggers a voicemail run for every link every 250 ms for `ms`, as timers would (faster). */
async function hammer(ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (const u of USERS) await enqueueSync(w.deps.syncQueue, { linkId: `L-${u}`, reason: "poll", at: Date.now() });
    await new Promise((r) => setTimeout(r, 250));
  }
}
const linkAlerts = async () => (await statusReport(w.deps)).alerts.filter((a) => a.linkId);
const endpointAlerts = async () => (await statusReport(w.deps)).alerts.filter((a) => a.endpointId);

beforeAll(async () => {
  w = await startWorld({ users: USERS, timers: false, endpoint: { authRetrySeconds: RETRY_SECONDS } });
  for (const u of USERS) users[u] = (await w.link(u, `lock${u}@contoso.test`)).userId;
  for (let i = 0; (await w.deps.state.listLinks({})).filter((l) => l.lastSyncAt && !l.lastError).length < USERS.length; i++) {
    if (i > 300) throw new Error("the first runs did not finish");
    await new Promise((r) => setTimeout(r, 100));
  }
  savedEnv = { ...process.env };
  Object.assign(process.env, w.env); // the CLI reads the deployment's UMC_* settings
}, 90_000);
afterAll(async () => { process.env = savedEnv; await w?.stop(); });

describe("lockout protection", () => {
  it("one login attempt per backoff window across all links, one alert, recovery when the secret changes", async () => {
    await w.dc.setMasterPassword("changed-on-the-store-1");
    await w.dc.lda("7101", avayaVoiceMessage({ id: "lock-1" }));
    const before = failedLogins().length;
    const started = Date.now();
    // Every link is triggered again and again from the moment the store changed: runs of all
    // three links queue for a login at once, yet only the first reaches the store unanswered;
    // the others read its block (logins per credential go one at a time: loginsAtOnce 1).
    await hammer(10_000);
    await expect.poll(async () => (await storeAccessState(w.deps).getBlock(`endpoint:${ENDPOINT}`))?.state, { timeout: 60_000 }).toBe("blocked"); // waits out a loaded machine; the stop itself is what is checked
    // A probe may still be waiting out Dovecot's own penalty for failed logins from this
    // address (anvil's auth penalty): settle until every probe the gate let through has an answer.
    const count = (event: string) => ((w.log as { lines?: Array<Record<string, unknown>> }).lines ?? []).filter((l) => l.event === event).length;
    // One refusal that was not a probe (the first), then only probes; each one failed login.
    const burst = () => count("credential.blocked") - count("credential.probe");
    const settled = () => {
      const seen = { burst: burst(), storeFailures: failedLogins().length - before, refusals: count("credential.blocked") };
      return seen.burst === 1 && seen.storeFailures === seen.refusals ? "settled" : JSON.stringify(seen);
    };
    await expect.poll(settled, { timeout: 60_000 }).toBe("settled");
    const fails = failedLogins().slice(before);
    const elapsed = (Date.now() - started) / 1000;
    // Without the gate: ~40 triggers x 3 links, each a failed login. With it: the first
    // failure, then one probe after 4 s (the next would be 8 s later, after the hammering).
    const events = ((w.log as { lines?: Array<Record<string, unknown>> }).lines ?? []).filter((l) => /^(credential|sync|queue)\./.test(String(l.event)));
    expect(fails.length, JSON.stringify(events.slice(-40))).toBeGreaterThanOrEqual(2);
    // The first refusal, then at most one probe per window (without the gate: one failure per
    // trigger and link, ~120).
    expect(fails.length).toBeLessThanOrEqual(1 + Math.floor(elapsed / RETRY_SECONDS));
    const block = await storeAccessState(w.deps).getBlock(`endpoint:${ENDPOINT}`);
    expect(block).toMatchObject({ state: "blocked", probes: count("credential.probe") });
    // One alert, for the endpoint; the links' own errors are covered by it.
    expect(await endpointAlerts()).toEqual([expect.objectContaining({ code: "IMAP_AUTH_FAILED", endpointId: ENDPOINT, severity: "critical" })]);
    expect((await endpointAlerts())[0]!.text).toContain(`all ${USERS.length} link(s)`);
    expect(await linkAlerts(), JSON.stringify(await linkAlerts())).toEqual([]);
    const links = await w.deps.state.listLinks({});
    expect(links.every((l) => l.lastError?.code === "IMAP_AUTH_FAILED")).toBe(true);
    expect(w.sim.outlook(users["7101"]!).messages("inbox")).toHaveLength(0);

    // The operator puts the store's new password into the secret: the next run logs in.
    setSecret("changed-on-the-store-1");
    await hammer(1500);
    await expect.poll(() => w.sim.outlook(users["7101"]!).messages("inbox").length, { timeout: 20_000 }).toBe(1);
    await expect.poll(async () => storeAccessState(w.deps).getBlock(`endpoint:${ENDPOINT}`), { timeout: 10_000 }).toBeUndefined();
    await expect.poll(async () => (await w.deps.state.listLinks({})).filter((l) => !l.lastError).length, { timeout: 20_000 }).toBe(USERS.length);
    expect(await endpointAlerts()).toEqual([]);
  }, 240_000);

  it("a store fixed on its side: logins stay stopped until `umconnect endpoint test` succeeds", async () => {
    w.dc.master.pass = "changed-on-the-store-1"; // what the secret holds now
    await w.dc.setMasterPassword("changed-on-the-store-2");
    await hammer(1500);
    await expect.poll(async () => (await storeAccessState(w.deps).getBlock(`endpoint:${ENDPOINT}`))?.state, { timeout: 10_000 }).toBe("blocked");
    const failsThen = failedLogins().length;
    // The store's admin undoes the change; the secret is unchanged, so nothing logs in yet
    // (the next probe is RETRY_SECONDS away; a run now is refused without touching the store).
    await w.dc.setMasterPassword("changed-on-the-store-1");
    await w.dc.lda("7102", avayaVoiceMessage({ id: "lock-2" }));
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(["endpoint", "test", ENDPOINT, "--mailbox", "7102"], (s) => out.push(s), (s) => err.push(s));
    expect({ code, err: err.join("\n") }).toEqual({ code: 0, err: "" });
    expect(out.join("\n")).toMatch(/logged in for 7102/);
    expect(await storeAccessState(w.deps).getBlock(`endpoint:${ENDPOINT}`)).toBeUndefined();
    expect(failedLogins().length).toBe(failsThen);
    await hammer(1000);
    await expect.poll(() => w.sim.outlook(users["7102"]!).messages("inbox").length, { timeout: 20_000 }).toBe(1);
  }, 60_000);

  it("`umconnect trace` puts the link's IMAP lines in the log for a bounded time, credentials and contents redacted", async () => {
    // Runs the earlier cases triggered are over first: one already past its login (untraced)
    // would pick up the new message and leave nothing for a traced run to fetch.
    await w.queueDrained();
    const out: string[] = [];
    expect(await main(["trace", "L-7103", "--minutes", "1"], (x) => out.push(x), () => undefined)).toBe(0);
    expect(out.join("\n")).toMatch(/trace on until/);
    const before = w.sim.outlook(users["7103"]!).messages("inbox").length;
    await w.dc.lda("7103", avayaVoiceMessage({ id: "trace-1", caller: "Zed Tracer", number: "+4930999888" }));
    await enqueueSync(w.deps.syncQueue, { linkId: "L-7103", reason: "poll", at: Date.now() });
    await expect.poll(() => w.sim.outlook(users["7103"]!).messages("inbox").length, { timeout: 20_000 }).toBe(before + 1);
    const traced = () => ((w.log as { lines?: Array<Record<string, unknown>> }).lines ?? []).filter((l) => l.event === "imap.trace");
    await expect.poll(() => traced().some((l) => /BODY\[\](<\d+>)? \[content redacted\]/.test(String(l.line))), { timeout: 10_000 }).toBe(true);
    const trace = traced();
    const text = trace.map((l) => `${l.dir}: ${l.line}`).join("\n");
    expect(trace.every((l) => l.linkId === "L-7103")).toBe(true); // other links are not traced
    expect(text).toMatch(/C: \S+ (LOGIN|AUTHENTICATE)\b.*\[credentials redacted\]/);
    expect(text).toMatch(/C: \S+ (SELECT|EXAMINE) /);
    expect(text).toMatch(/\[content redacted\]/); // the message was fetched, its content not logged
    expect(text).not.toContain(w.dc.master.pass);
    expect(text).not.toMatch(/Zed Tracer|4930999888/);
  }, 60_000);
});
