/**
 * One sync run of the real executor (voicemail, contacts or calendar) for one link, in a
 * process of its own, that dies by SIGKILL the moment its Nth write has been answered.
 *
 * Writes are counted across the executor's parallel actions (default parallelism, as in
 * production) by src/sync/writeGate.ts: every voice store STORE/EXPUNGE/APPEND, Graph create,
 * PATCH and DELETE, and state row. When write N is answered the process records it and kills
 * itself: requests of the other actions still in flight die with it, nothing after runs,
 * nothing is cleaned up (IMAP sessions are not logged out, the lease is not released).
 * Without a crash point the run completes and reports how many writes it made (the
 * counting run that sets the range of N).
 *
 * Usage: node --import tsx test/harness/crashRun.ts '<job JSON>'; the outcome is written to
 * job.report: {"crashedAt":N,"write":"exchange.create"} or {"completed":true,"writes":W}.
 */
import fs from "node:fs";
import { loadConfig } from "../../src/config.js";
import { buildDeps } from "../../src/app/deps.js";
import { createLogger } from "../../src/log.js";
import { openVoicemailPorts } from "../../src/app/voicemail.js";
import { openContactsPorts } from "../../src/app/contacts.js";
import { openVoiceMailbox } from "../../src/imap/voiceMailbox.js";
import { ExchangeCalendar } from "../../src/graph/calendar.js";
import { syncVoicemail } from "../../src/sync/voicemailSync.js";
import { syncContacts } from "../../src/sync/contactsSync.js";
import { mirrorLink } from "../../src/app/mirror.js";
import { syncCalendar, type CalendarCursors, type CalendarRecord } from "../../src/sync/calendarSync.js";
import { gateCalendarPorts, gateContactsPorts, gateVoicemailPorts, type WriteHooks } from "../../src/sync/writeGate.js";
import type { CrashJob } from "./crash.js";

const job = JSON.parse(process.argv[2]!) as CrashJob;
const deps = buildDeps(loadConfig(job.env), createLogger({ level: "error" }));
const link = await deps.state.getLink(job.linkId);
if (!link) throw new Error(`no link ${job.linkId}`);
const ids = { tenantId: link.tenantId, mailboxId: link.linkId };

let writes = 0;
const names: string[] = [];
const hooks: WriteHooks = {
  after(write) {
    writes++;
    names.push(write);
    if (writes !== job.crashAt) return;
    fs.writeFileSync(job.report, JSON.stringify({ crashedAt: writes, write }));
    process.kill(process.pid, "SIGKILL"); // the kernel ends the process here: no further JS runs
  },
};

switch (job.kind) {
  case "voicemail": {
    const ports = await openVoicemailPorts(deps, link);
    await syncVoicemail({ ...gateVoicemailPorts(ports, hooks), log: deps.log, limits: { massDeleteMaxShare: 1 }, ids });
    await ports.voice.close();
    break;
  }
  case "contacts": {
    const ports = await openContactsPorts(deps, link, (await deps.directory()).profile(link.profileId));
    await syncContacts({ ...gateContactsPorts(ports, hooks), log: deps.log, limits: { massDeleteMaxShare: 1 }, ids });
    await ports.store.close();
    break;
  }
  case "mirror": {
    // The disaster-recovery mirror of every folder the link's profile names (backup writes and state rows gated).
    await mirrorLink(deps, link, { mode: "incremental", log: deps.log, hooks });
    break;
  }
  case "calendar": {
    const dir = await deps.directory();
    const store = await openVoiceMailbox(dir.endpoint(link.endpointId), link.voiceMailbox, { folder: "Calendar", removal: { mode: "expunge" }, createFolder: true });
    const exchange = new ExchangeCalendar(deps.graph(link.tenantId), link.userId);
    await syncCalendar({
      ...gateCalendarPorts({ store, state: deps.state.recordState<CalendarRecord, CalendarCursors>(link.linkId, "calendar") }, hooks),
      exchange: { changes: (win, d) => exchange.changes(win, d) },
      window: { pastDays: 1, futureDays: 14 }, now: new Date(), limits: { massDeleteMaxShare: 1 }, log: deps.log, ids,
    });
    await store.close();
    break;
  }
}
fs.writeFileSync(job.report, JSON.stringify({ completed: true, writes, names }));
process.exit(0);
