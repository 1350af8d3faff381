/**
 * Adoption on the first sync (issue 17): one mailbox moving from another product, with 5,000
 * voice messages on the store that the previous product already put into Exchange (half as
 * Cisco single-inbox replicas, matched by Message-ID; half as Exchange UM items, matched by
 * caller, time and duration) and 2,000 contacts on both sides. Against the full local world
 * with the Graph simulator answering every request after 20 ms; the throttle ceiling is
 * Outlook's 4 requests in flight per mailbox: 4 / 20 ms = 200 requests/s nominally, and as
 * measured in the same run (bench/connectorProcess.ts measuredGraphCeiling). Each first sync
 * runs in a connector process of its own on the built app.
 * Figures: Graph requests per adopted item, Graph throughput against the ceiling, duplicates.
 */
import { startWorld, TENANT, type World } from "../test/e2e/world.js";
import { avayaVoiceMessage } from "../test/fixtures/voicemail.js";
import { ciscoSingleInboxVoicemail, exchangeUmVoicemail } from "../test/graph-sim/previousProducts.js";
import { SYNC_KEY_PROP } from "../src/graph/voicemail.js";
import type { Figure } from "./report.js";
import { measuredGraphCeiling, runInConnectorProcess } from "./connectorProcess.js";

export const title = "Adoption on the first sync (simulator latency 20 ms per request)";

const N_VOICE = 5000;
const N_CONTACTS = 2000;
const CEILING = 4 / 0.020;

export async function run(): Promise<Figure[]> {
  const w = await startWorld({ users: ["7001"], sim: { latencyMs: 20 }, quiet: true, timers: false, profiles: [{ id: "people", displayName: "Voice and contacts", contacts: { enabled: true } }] });
  try {
    return await adopt(w);
  } finally { await w.stop(); }
}

async function adopt(w: World): Promise<Figure[]> {
  const upn = "migrated@contoso.test";
  const user = w.sim.addUser(TENANT, { userPrincipalName: upn });
  const base = Date.parse("2025-01-01T08:00:00Z");
  const c = await w.imap("7001");
  for (let i = 0; i < N_VOICE; i++) {
    const date = new Date(base + i * 600_000);
    const number = `+49 30 ${1_000_000 + i}`;
    const seconds = 5 + (i % 90);
    await c.append("INBOX", avayaVoiceMessage({ id: `mig-${i}`, caller: `Caller ${i}`, number, seconds, date, audioSamples: 200 }), i % 3 ? [] : ["\\Seen"]);
    if (i % 2) ciscoSingleInboxVoicemail(w.sim, upn, { internetMessageId: `<mig-${i}@pbx.example.test>`, callerNumber: "unknown", durationSeconds: seconds, receivedAt: new Date(date.getTime() + 5_000), isRead: i % 5 === 0 });
    else exchangeUmVoicemail(w.sim, upn, { callerNumber: number.replace(/ /g, ""), durationSeconds: seconds, receivedAt: new Date(date.getTime() + 40_000), isRead: i % 5 === 0 });
  }
  await c.mailboxCreate("Contacts").catch(() => undefined);
  const people = w.sim.people(user.id);
  for (let i = 0; i < N_CONTACTS; i++) {
    await c.append("Contacts", Buffer.from(`Subject: c${i}\r\nContent-Type: text/vcard\r\n\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nUID:mig-${i}\r\nFN:Person ${i}\r\nN:${i};Person;;;\r\nTEL;TYPE=WORK:+49 30 ${2_000_000 + i}\r\nEMAIL:p${i}@example.test\r\nEND:VCARD\r\n`), ["\\Seen"]);
    people.add({ displayName: `Person ${i}`, givenName: "Person", surname: String(i), businessPhones: [`030 ${2_000_000 + i}`], emailAddresses: [{ address: `p${i}@example.test` }] });
  }
  await c.logout();
  const linkId = "L-7001";
  await w.deps.state.createLink({ linkId, tenantId: TENANT, endpointId: "voice-1", voiceMailbox: "7001", userId: user.id, upn, profileId: "people", state: "enabled" });

  // Each first sync runs in a connector process of its own on the built app (its figures are
  // the connector's, not shared with the simulator's CPU; bench/connectorProcess.ts).
  const requestsOf = () => w.sim.stats.byMailbox.get(user.id) ?? 0;
  const throttled = w.sim.stats.throttled;
  const firstSync = async (kind: "voicemail" | "contacts") => {
    const before = requestsOf();
    const run = await runInConnectorProcess(w, linkId, kind, { reason: "admin" });
    const link = await w.deps.state.getLink(linkId);
    const done = kind === "voicemail" ? link?.lastSyncAt : link?.kinds?.contacts?.lastSyncAt;
    if (run.status !== "ran" || !done) throw new Error(`the ${kind} first sync did not finish in one run: ${JSON.stringify(run)}`);
    return { seconds: run.ms / 1000, requests: requestsOf() - before };
  };
  const { seconds: vmSeconds, requests: vmRequests } = await firstSync("voicemail");
  const inbox = w.sim.outlook(user.id).messages("inbox");
  const keyed = inbox.filter((m) => m.ext.has(SYNC_KEY_PROP.toLowerCase()));
  const keys = new Set(keyed.map((m) => m.ext.get(SYNC_KEY_PROP.toLowerCase())!.value));
  const { seconds: cSeconds, requests: cRequests } = await firstSync("contacts");
  const ceiling = await measuredGraphCeiling(w, TENANT);
  const contacts = people.list().length;
  const records = (await w.deps.state.recordState<{ syncKey: string; imapUid?: number; graphId?: string }, object>(linkId, "contacts").loadItems()).filter((r) => r.imapUid !== undefined && r.graphId !== undefined).length;
  const lastError = (await w.deps.state.getLink(linkId))?.lastError;
  if (lastError) throw new Error(`the voicemail run failed: ${lastError.code} ${lastError.message}`);

  return [
    { name: "voice 5,000 adopted: Graph requests per adopted item", value: vmRequests / N_VOICE, unit: "req", reference: 1.1, better: "lower" },
    { name: "voice 5,000 adopted: Graph throughput vs throttle ceiling (200 req/s)", value: vmRequests / vmSeconds / CEILING, unit: "x ceiling", reference: 0.8, better: "higher" },
    { name: `voice 5,000 adopted: Graph throughput vs the ceiling measured in this run (${ceiling.toFixed(0)} req/s: 4 bare creates in flight)`, value: vmRequests / vmSeconds / ceiling, unit: "x ceiling", reference: 0.8, better: "higher" },
    { name: "voice 5,000 adopted: wall time", value: vmSeconds, unit: "s", reference: vmRequests / CEILING / 0.8, better: "lower" },
    { name: "voice: items in Exchange (5,000 expected, 0 duplicates)", value: inbox.length, unit: "", reference: N_VOICE, better: "lower" },
    { name: "voice: items adopted (carrying our key, distinct)", value: Math.min(keyed.length, keys.size), unit: "", reference: N_VOICE, better: "higher" },
    { name: "contacts 2,000 on both sides: Graph requests per adopted contact", value: cRequests / N_CONTACTS, unit: "req", reference: 1.1, better: "lower" },
    { name: "contacts 2,000 on both sides: wall time", value: cSeconds, unit: "s", reference: N_CONTACTS / CEILING / 0.8, better: "lower" },
    { name: "contacts 2,000 on both sides: wall time vs the measured ceiling", value: cSeconds, unit: "s", reference: N_CONTACTS / ceiling / 0.8, better: "lower" },
    { name: "contacts: in Exchange (2,000 expected, 0 duplicates)", value: contacts, unit: "", reference: N_CONTACTS, better: "lower" },
    { name: "contacts: linked pairs", value: records, unit: "", reference: N_CONTACTS, better: "higher" },
    { name: "all 7,000: Graph requests per adopted item", value: (vmRequests + cRequests) / (N_VOICE + N_CONTACTS), unit: "req", reference: 1.1, better: "lower" },
    { name: "429 responses received", value: w.sim.stats.throttled - throttled, unit: "", reference: 0, better: "lower" },
  ];
}
