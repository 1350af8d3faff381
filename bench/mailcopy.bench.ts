/**
 * E-mail on the phone (issue 22): the first sync of a heavy Inbox, copy limited to the last 30
 * days, against the full local world with the Graph simulator answering every request after
 * 20 ms. The run happens in a connector process of its own (bench/mailcopy-worker.ts), so its
 * peak RSS is the connector's alone.
 *
 * Figures:
 *  - Graph requests per copied message (the delta's pages carry bodies and properties; only
 *    messages with attachments cost one more request, to name what was left out);
 *  - copy throughput against the throttle ceiling: Outlook allows 4 requests in flight per
 *    mailbox (https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits),
 *    4 / 20 ms = 200 requests/s here, so a copy spending the 1.2 requests per message budget
 *    could at most copy 200 / 1.2 = 167 messages/s; the ratio is the measured copies/s to that;
 *  - 429 answers (the 5th concurrent request is refused by the simulator, as by Graph);
 *  - peak RSS of the connector process (kernel maxRSS).
 * UMC_BENCH_MAILCOPY_MESSAGES sets the Inbox size (default 10,000), for a loaded machine.
 * The store's push is off: the test world's Dovecot makes each APPEND wait for the push to the
 * dev host in this same process (its Lua hook runs inside the APPEND), which measures the
 * world's webhook, not the copy (the push path is covered by test/e2e/emailToPhone.test.ts).
 */
import { execFile } from "node:child_process";
import { startWorld, TENANT } from "../test/e2e/world.js";
import type { Figure } from "./report.js";
import { MAIL_PAGE_SIZE } from "../src/graph/mail.js";

export const title = "E-mail on the phone: first sync of a heavy Inbox (simulator latency 20 ms per request)";

const CEILING = 4 / 0.020;
const BUDGET = 1.2;
const DAY = 86_400_000;

/** A realistic HTML body: Outlook on the web's layout (Microsoft's message-get example 4) with a few paragraphs. */
const body = (i: number) => `<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"><style type="text/css" style="display:none;"><!-- P {margin-top:0;margin-bottom:0;} --></style></head><body dir="ltr"><div id="divtagdefaultwrapper" style="font-size:12pt;color:#000000;font-family:Calibri,Helvetica,sans-serif;" dir="ltr">`
  + Array.from({ length: 6 }, (_, p) => `<p>Message ${i}, paragraph ${p}: the quarterly figures are attached in the usual place; please review <a href="https://contoso.example/doc/${i}/${p}">the document</a> before Friday.</p>`).join("") + `</div></body></html>`;

export async function run(): Promise<Figure[]> {
  const N = Number(process.env.UMC_BENCH_MAILCOPY_MESSAGES ?? 10_000);
  const SPAN_DAYS = 300; // received over ten months: the last 30 days hold about a tenth
  const w = await startWorld({
    users: ["8001"], sim: { latencyMs: 20 }, quiet: true, timers: false, storePush: false,
    profiles: [{ id: "mail30", displayName: "E-mail, last 30 days", emailToPhone: { enabled: true, storeFolder: "Email", storeFolderCap: 100_000, filters: { unreadOnly: false, maxAgeDays: 30 } } }],
  });
  try {
    const user = w.sim.addUser(TENANT, { userPrincipalName: "heavy@contoso.test" });
    const o = w.sim.outlook(user.id);
    const now = Date.now();
    let expected = 0;
    for (let i = 0; i < N; i++) {
      const received = now - Math.floor((i / N) * SPAN_DAYS * DAY) - 60_000;
      if (received >= now - 30 * DAY) expected++;
      o.receive({ subject: `Report ${i}`, from: { name: "Ann Lee", address: "ann@contoso.test" }, body: { contentType: "html", content: body(i) }, receivedDateTime: new Date(received).toISOString(), isRead: i % 3 === 0,
        attachments: i % 20 === 0 ? [{ name: `figures-${i}.xlsx`, contentType: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", bytes: Buffer.alloc(2048, 1) }] : undefined });
    }
    await w.deps.state.createLink({ linkId: "L-8001", tenantId: TENANT, endpointId: "voice-1", voiceMailbox: "8001", userId: user.id, upn: "heavy@contoso.test", profileId: "mail30", state: "enabled" });
    const before = w.sim.stats.byMailbox.get(user.id) ?? 0;
    const deltaRoute = "GET /users/{id}/mailFolders/{id}/messages/delta";
    const deltaBefore = w.sim.stats.byRoute.get(deltaRoute) ?? 0;
    const throttledBefore = w.sim.stats.throttled;
    const cfg = w.deps.config;
    const env = {
      ...process.env, UMC_ENVIRONMENT: "test", UMC_STORAGE_CONNECTION_STRING: cfg.storage.connectionString, UMC_CLIENT_ID: cfg.identity.clientId,
      UMC_CLIENT_SECRET: "app-secret-for-tests", UMC_AUTHORITY_HOST: cfg.identity.authorityHost, UMC_GRAPH_BASE_URL: cfg.graph.baseUrl,
      UMC_SECRETS_FILE: cfg.secrets.secretsFile, UMC_LEASE_SECONDS: "60",
    };
    // Asynchronous: the simulator the child talks to lives in this process.
    const out = await new Promise<string>((resolve, reject) => execFile(process.execPath, ["--import", "tsx", new URL("./mailcopy-worker.ts", import.meta.url).pathname, "L-8001"], { env, encoding: "utf8", maxBuffer: 1 << 22 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))));
    const worker = JSON.parse(out.trim().split("\n").at(-1)!) as { peakRssBytes: number; ms: number; status: string; report?: { actions: { copy: number }; notCopied: Record<string, number> } };
    if (worker.status !== "ran" || !worker.report) throw new Error(`the mail run did not run: ${out}`);
    const requests = (w.sim.stats.byMailbox.get(user.id) ?? 0) - before;
    const deltaPages = (w.sim.stats.byRoute.get(deltaRoute) ?? 0) - deltaBefore;
    const copied = worker.report.actions.copy;
    const seconds = worker.ms / 1000;
    const c = await w.imap("8001");
    let inStore = 0;
    try { inStore = (await c.mailboxOpen("Email")).exists; } finally { await c.logout(); }
    const setting = `${N.toLocaleString("en")} Inbox messages over ${SPAN_DAYS} days, maxAgeDays 30, unreadOnly off, 1 in 20 with an attachment (omitted, named)`;
    return [
      { name: `messages copied (received in the last 30 days: ${expected})`, value: copied, unit: "", reference: expected, better: "equal", setting },
      { name: "copies in the store folder", value: inStore, unit: "", reference: expected, better: "equal", setting },
      { name: "Graph requests per copied message", value: requests / Math.max(1, copied), unit: "req", reference: BUDGET, better: "lower", setting },
      { name: `copy throughput vs throttle ceiling (copies/s / (${CEILING} req/s / ${BUDGET} req per copy))`, value: copied / seconds / (CEILING / BUDGET), unit: "x ceiling", reference: 0.8, better: "higher", setting },
      { name: "first sync wall time", value: seconds, unit: "s", reference: expected / (CEILING / BUDGET) / 0.8, better: "lower", setting },
      { name: "Graph requests in all (delta pages + attachment listings)", value: requests, unit: "req", reference: Math.ceil(expected * BUDGET), better: "lower", setting },
      // Without the $filter on receivedDateTime the first sync would page through the whole Inbox.
      { name: `delta pages read (the first sync lists only the 30-day window, ${MAIL_PAGE_SIZE} per page)`, value: deltaPages, unit: "req", reference: Math.ceil(expected / MAIL_PAGE_SIZE) + 1, better: "lower", setting },
      { name: "429 responses received", value: w.sim.stats.throttled - throttledBefore, unit: "", reference: 0, better: "lower", setting },
      { name: "connector process peak RSS (kernel maxRSS)", value: worker.peakRssBytes / 1024 / 1024, unit: "MB", reference: 256, better: "lower", setting },
    ];
  } finally {
    await w.stop();
  }
}
