/**
 * The status page for a deployment of 10,000 mailboxes: selecting, sorting and drawing one page
 * (200 rows, the default) with the per-tenant charts from every link's hourly figures, as the
 * route does after reading the state. The time only counts when the page is the right one:
 * exactly 200 rows, the worst lag first, and one pair of charts per tenant. Reference: half of a
 * one-second answer to an administrator (the other half is reading the rows from Table Storage).
 */
import { selectLinks, type LinkStatus, type StatusReport } from "../src/admin/status.js";
import { statusPage } from "../src/admin/statusHtml.js";
import type { HourBucket } from "../src/state/runHistory.js";
import type { Figure } from "./report.js";

export const title = "Status page, 10,000 links in 10 tenants";

export async function run(): Promise<Figure[]> {
  const now = Date.now();
  const tenants = Array.from({ length: 10 }, (_, i) => `00000000-0000-4000-8000-0000000000${String(i).padStart(2, "0")}`);
  const links: LinkStatus[] = Array.from({ length: 10_000 }, (_, i) => ({
    linkId: `L-${String(i).padStart(5, "0")}`, tenantId: tenants[i % 10]!, voiceMailbox: `${4000 + i}@voice-${i % 4}`, exchangeUser: `user${i}@contoso.test`,
    state: i % 50 === 0 ? "paused" : "enabled", profileId: "default", lastSyncAt: new Date(now - (i % 600) * 1000).toISOString(), lagSeconds: i === 7777 ? 99_999 : i % 600,
    unreadVoice: i % 7, readDriftTotal: 0, skipped: i % 100 === 0 ? [{ syncKey: `k${i}`, code: "AUDIO_MISSING", message: "no audio" }] : [],
    ...(i % 250 === 0 ? { lastError: { code: "IMAP_UNAVAILABLE", message: "store restarting", at: new Date(now).toISOString() } } : {}),
    subscriptionExpiresAt: new Date(now + 86_400_000).toISOString(),
  }));
  const report: StatusReport = {
    generatedAt: new Date(now).toISOString(),
    tenants: tenants.map((t) => ({ tenantId: t, status: "active", links: 1000, failing: 4 })),
    links,
    alerts: links.filter((l) => l.skipped.length).map((l) => ({ severity: "warning" as const, linkId: l.linkId, code: "ITEMS_SKIPPED", text: "1 voice message(s) could not be copied" })),
  };
  const history = new Map<string, HourBucket[]>(links.map((l, i) => [l.linkId, Array.from({ length: 24 }, (_, h) => ({ hour: new Date(now - h * 3600_000).toISOString().slice(0, 13), runs: (i + h) % 5, failed: (i + h) % 23 === 0 ? 1 : 0, lagMaxMs: ((i * 31 + h) % 40) * 250 }))]));
  const rounds = 10;
  let html = "";
  let selected: StatusReport | undefined;
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) {
    const q = { sort: "lastSync" as const, dir: "desc" as const };
    selected = selectLinks(report, q);
    html = String(statusPage(selected, q, history, report).body);
  }
  const ms = (performance.now() - t0) / rounds;
  return [
    { name: "select, sort and draw one page (200 of 10,000 links, 10 tenants' charts)", value: ms, unit: "ms", reference: 500, better: "lower" },
    { name: "page size", value: html.length / 1024, unit: "KiB", reference: 1024, better: "lower" },
    { name: "rows on the page", value: (html.match(/<th scope="row">/g) ?? []).length, unit: "rows", reference: 200, better: "equal" },
    { name: "first row is the worst lag (L-07777)", value: selected!.links[0]!.linkId === "L-07777" ? 1 : 0, unit: "", reference: 1, better: "equal" },
    { name: "charts (2 per tenant)", value: (html.match(/<svg /g) ?? []).length, unit: "charts", reference: 20, better: "equal" },
  ];
}
