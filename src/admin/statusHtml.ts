/**
 * The status pages for people: the mailboxes (search, filters, sorting by any column, paging),
 * alerts, per-tenant charts of the last day; and a page per link with its recent runs,
 * alerts, subscriptions and charts. Plain HTML and CSS with forms and links only: no script,
 * nothing loaded from elsewhere (CSP below), usable with a keyboard and a screen reader
 * (landmarks, labelled controls, aria-sort on the sorted column, charts described in words)
 * and on a phone (viewport, wrapping controls, tables that scroll sideways in a focusable
 * region). Everything written into the page is escaped.
 */
import type { HttpResponseInit } from "@azure/functions";
import { PAGE_SECURITY_HEADERS } from "../security/pageHeaders.js";
import type { KindStatus } from "../state/stateStore.js";
import type { HourBucket, RunRecord } from "../state/runHistory.js";
import { LINK_STATES, type LinkStatus, type SortKey, type StatusQuery, type StatusReport, type Alert } from "./status.js";
import { dayCharts, lastDay } from "./charts.js";

/** The pages' own CSP: the common one, with GET forms allowed back to this page (search and filters). */
export const STATUS_PAGE_HEADERS = {
  ...PAGE_SECURITY_HEADERS,
  "content-security-policy": PAGE_SECURITY_HEADERS["content-security-policy"].replace("form-action 'none'", "form-action 'self'"),
};

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const time = (iso: string) => esc(iso.slice(0, 16).replace("T", " "));

const STYLE = `
*{box-sizing:border-box}body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b;line-height:1.4}
header,main{padding:0 1rem;max-width:80rem;margin:0 auto}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.5rem}
a{color:#0b57a4}a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,.scroll:focus-visible{outline:3px solid #b35900;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:.5rem;background:#fff;padding:.25rem .5rem;z-index:1}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:flex-end;margin:1rem 0}form.filters label{display:flex;flex-direction:column;font-size:.85rem}
input,select,button{font:inherit;padding:.35rem .5rem;min-height:2.5rem}button{cursor:pointer}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ccc;padding:.4rem .5rem;text-align:left;font-size:.9rem;vertical-align:top}
th a{text-decoration:none}th a:hover{text-decoration:underline}tr.bad td{background:#fdecea}.critical{color:#9c1c22}.warning{color:#7a4f00}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:1rem}figure.chart{margin:0;flex:1 1 20rem;max-width:30rem}figure.chart svg{width:100%;height:auto}
.chart text{font-size:9px;fill:#333}.chart .axis{stroke:#666}.chart .bar{fill:#4a7ab8}.chart .bar-part{fill:#9c1c22}figcaption{font-size:.85rem}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
@media (max-width:40rem){td,th{font-size:.85rem;padding:.35rem}}`;

function page(title: string, body: string, status = 200): HttpResponseInit {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${esc(title)}</title><style>${STYLE}</style></head><body>
<a class="skip" href="#main">Skip to content</a>${body}</body></html>`;
  return { status, headers: { "content-type": "text/html; charset=utf-8", ...STATUS_PAGE_HEADERS, "cache-control": "no-store" }, body: html };
}

/** The query string of this page with some parameters changed (undefined removes one). */
function href(q: StatusQuery, change: Partial<Record<"tenant" | "state" | "problem" | "q" | "sort" | "dir" | "limit" | "after" | "offset" | "link", string | undefined>>): string {
  const p: Record<string, string | undefined> = {
    format: "html", tenant: q.tenantId, state: q.state, problem: q.problem ?? (q.problems ? "any" : undefined), q: q.search,
    sort: q.sort, dir: q.dir, limit: q.limit === undefined ? undefined : String(q.limit), ...change,
  };
  return `?${esc(new URLSearchParams(Object.entries(p).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== "")).toString())}`;
}

const COLUMNS: Array<{ key: SortKey; label: string }> = [
  { key: "mailbox", label: "voice mailbox" }, { key: "user", label: "Exchange user" }, { key: "state", label: "state / profile" },
  { key: "lastSync", label: "last sync" }, { key: "unread", label: "unread" }, { key: "subscription", label: "subscription until" },
];

function kindCell(l: LinkStatus): string {
  const part = (name: string, k: KindStatus | undefined, extra: string) => k ? `${name}: ${k.lastError ? `<b>${esc(k.lastError.code)}</b>` : k.lastSyncAt ? "ok" : "pending"}${extra}` : "";
  return [
    part("contacts", l.contacts, l.contacts?.conflicts ? ` (${l.contacts.conflicts} conflicts kept)` : ""),
    part("calendar", l.calendar, l.calendar?.items !== undefined ? ` (${l.calendar.items} items)` : ""),
    part("location", l.location, l.location?.location ? ` (${esc(l.location.location)})` : ""),
    part("mirror", l.mirror, l.mirror ? ` (backlog ${l.mirror.items ?? 0}${l.mirror.lastSyncAt ? `, last ${time(l.mirror.lastSyncAt)}` : ""}${Object.entries(l.mirror.skew ?? {}).map(([e, s]) => `, ${esc(e)} clock ${s >= 0 ? "+" : ""}${s} s`).join("")})` : ""),
  ].filter(Boolean).join("<br>") || "-";
}

function problemsCell(l: LinkStatus): string {
  return `${l.lastError ? `${esc(l.lastError.code)}: ${esc(l.lastError.message)}` : ""}${l.throttled ? `<br>throttled by Graph ${l.throttled.count}x, last ${time(l.throttled.lastAt)}` : ""}${l.skipped.length ? `<br>${l.skipped.length} skipped: ${l.skipped.slice(0, 3).map((s) => esc(s.code)).join(", ")}` : ""}`;
}

function subscriptionCell(l: LinkStatus): string {
  return `${l.subscriptionExpiresAt ? time(l.subscriptionExpiresAt) : "-"}${Object.entries(l.subscriptions ?? {}).filter(([, h]) => h && h.state !== "active").map(([k, h]) => `<br><b>${esc(k)}: ${esc(h!.state)}</b> (polled)`).join("")}`;
}

const alertItem = (a: Alert, linked: boolean) => `<li class="${a.severity}"><span class="sr">${esc(a.severity)}: </span><span aria-hidden="true">${esc(a.severity)}: </span>${a.linkId ? (linked ? `<a href="?format=html&amp;link=${esc(encodeURIComponent(a.linkId))}">${esc(a.linkId)}</a>: ` : "") : a.endpointId ? `voice store ${esc(a.endpointId)}: ` : ""}${esc(a.text)} <code>${esc(a.code)}</code></li>`;

/** The main page: filters, alerts, per-tenant charts, stores, tenants, the mailboxes. */
export function statusPage(r: StatusReport, q: StatusQuery, history: Map<string, HourBucket[]> = new Map(), all: StatusReport = r): HttpResponseInit {
  const now = Date.parse(r.generatedAt);
  const codes = [...new Set(all.alerts.map((a) => a.code))].sort();
  const option = (value: string, label: string, current: string | undefined) => `<option value="${esc(value)}"${value === (current ?? "") ? " selected" : ""}>${esc(label)}</option>`;
  const form = `<form class="filters" method="get" role="search" aria-label="Find mailboxes"><input type="hidden" name="format" value="html">
<label>Search (link, mailbox, user)<input type="search" name="q" value="${esc(q.search ?? "")}" autocomplete="off"></label>
<label>Tenant<select name="tenant">${option("", "all tenants", q.tenantId)}${all.tenants.map((t) => option(t.tenantId, t.tenantId, q.tenantId)).join("")}</select></label>
<label>State<select name="state">${option("", "any state", q.state)}${LINK_STATES.map((s) => option(s, s, q.state)).join("")}</select></label>
<label>Problem<select name="problem">${option("", "any or none", q.problem ?? (q.problems ? "any" : undefined))}${option("any", "with a problem", q.problem ?? (q.problems ? "any" : undefined))}${codes.map((c) => option(c, c, q.problem)).join("")}</select></label>
${q.sort ? `<input type="hidden" name="sort" value="${esc(q.sort)}">` : ""}${q.dir ? `<input type="hidden" name="dir" value="${esc(q.dir)}">` : ""}
<button type="submit">Show</button> <a href="?format=html">Clear</a></form>`;
  const th = (c: { key: SortKey; label: string }) => {
    const current = q.sort === c.key;
    const dir = current && q.dir !== "desc" ? "desc" : "asc";
    const sortState = current ? (q.dir === "desc" ? "descending" : "ascending") : undefined;
    return `<th scope="col"${sortState ? ` aria-sort="${sortState}"` : ""}><a href="${href(q, { sort: c.key, dir, after: undefined, offset: undefined })}">${esc(c.label)}<span class="sr">, sort ${dir === "asc" ? "ascending" : "descending"}</span>${current ? (q.dir === "desc" ? " ▼" : " ▲") : ""}</a></th>`;
  };
  const row = (l: LinkStatus) => `<tr class="${l.lastError ? "bad" : ""}"><th scope="row"><a href="?format=html&amp;link=${esc(encodeURIComponent(l.linkId))}">${esc(l.voiceMailbox)}</a></th><td>${esc(l.exchangeUser)}</td><td>${esc(l.state)}<br><small>${esc(l.profileId)}${l.overrides ? ` + override (${esc(l.overrides.join(", "))})` : ""}</small></td><td>${l.lastSyncAt ? `${l.lagSeconds} s ago` : "never"}</td><td>${l.unreadVoice}${l.readDriftTotal ? ` (drift fixed: ${l.readDriftTotal})` : ""}</td><td>${subscriptionCell(l)}</td><td>${kindCell(l)}</td><td>${problemsCell(l)}</td></tr>`;
  const nextHref = r.page?.next ? href(q, { after: r.page.next }) : r.page?.nextOffset !== undefined ? href(q, { offset: String(r.page.nextOffset) }) : undefined;
  // Each link's hourly figures, grouped by its tenant once.
  const byTenant = new Map<string, HourBucket[][]>();
  for (const l of all.links) {
    const h = history.get(l.linkId);
    if (h) byTenant.set(l.tenantId, [...(byTenant.get(l.tenantId) ?? []), h]);
  }
  const charts = r.tenants.map((t) => `<h3>Tenant ${esc(t.tenantId)}</h3>${dayCharts(`Tenant ${t.tenantId}`, lastDay(byTenant.get(t.tenantId) ?? [], now))}`).join("");
  const body = `<header><h1>umconnect status</h1><p>Generated ${time(r.generatedAt)} UTC</p></header><main id="main">
${form}
<section aria-labelledby="h-alerts"><h2 id="h-alerts">Alerts (${r.alerts.length})</h2><ul>${r.alerts.map((a) => alertItem(a, true)).join("") || "<li>none</li>"}</ul></section>
<section aria-labelledby="h-day"><h2 id="h-day">Last day</h2>${charts || "<p>No tenant is connected.</p>"}</section>
${r.stores?.length ? `<section aria-labelledby="h-stores"><h2 id="h-stores">Voice stores: connections in use (all instances) / budget</h2><div class="scroll" tabindex="0" role="region" aria-label="Voice stores table"><table><thead><tr><th scope="col">endpoint</th><th scope="col">per address</th><th scope="col">busiest user</th></tr></thead><tbody>${r.stores.map((x) => `<tr><td>${esc(x.endpointId)}</td><td>${x.address} / ${x.budget.perAddress}</td><td>${x.busiestUser ? `${esc(x.busiestUser.mailbox)}: ${x.busiestUser.connections}` : "0"} / ${x.budget.perUser}</td></tr>`).join("")}</tbody></table></div></section>` : ""}
<section aria-labelledby="h-tenants"><h2 id="h-tenants">Tenants</h2><ul>${r.tenants.map((t) => `<li><a href="${href(q, { tenant: t.tenantId, after: undefined, offset: undefined })}">${esc(t.tenantId)}</a>: ${esc(t.status)}, ${t.links} links, ${t.failing} failing</li>`).join("")}</ul></section>
<section aria-labelledby="h-mailboxes"><h2 id="h-mailboxes">Mailboxes${r.page ? ` (${r.page.shown} of ${r.page.matching})` : ""}</h2>${nextHref ? `<p><a href="${nextHref}">next page</a></p>` : ""}
<div class="scroll" tabindex="0" role="region" aria-label="Mailboxes table"><table><caption class="sr">Mailboxes; the column headers sort</caption><thead><tr>${COLUMNS.map(th).join("")}<th scope="col">contacts / calendar</th>${th({ key: "problems", label: "problems" })}</tr></thead><tbody>${r.links.map(row).join("") || `<tr><td colspan="8">No mailbox matches.</td></tr>`}</tbody></table></div></section>
</main>`;
  return page("umconnect status", body);
}

/** One link: its state, alerts, subscriptions, charts and recent runs. */
export function linkPage(l: LinkStatus, alerts: Alert[], runs: RunRecord[], hours: HourBucket[], now: number): HttpResponseInit {
  const subs = Object.entries(l.subscriptions ?? {}).filter((e) => e[1]);
  const body = `<header><nav aria-label="Breadcrumb"><a href="?format=html">All mailboxes</a> › <a href="?format=html&amp;tenant=${esc(encodeURIComponent(l.tenantId))}">tenant ${esc(l.tenantId)}</a></nav><h1>${esc(l.voiceMailbox)} ↔ ${esc(l.exchangeUser)}</h1></header><main id="main">
<dl><dt>link</dt><dd>${esc(l.linkId)}</dd><dt>state</dt><dd>${esc(l.state)}</dd><dt>profile</dt><dd>${esc(l.profileId)}${l.overrides ? ` + override (${esc(l.overrides.join(", "))})` : ""}</dd>
<dt>last sync</dt><dd>${l.lastSyncAt ? `${time(l.lastSyncAt)} UTC (${l.lagSeconds} s ago)` : "never"}</dd><dt>unread voicemail</dt><dd>${l.unreadVoice}</dd>
<dt>read drift fixed</dt><dd>${l.readDriftTotal}</dd>${l.throttled ? `<dt>throttled by Graph</dt><dd>${l.throttled.count}x, last ${time(l.throttled.lastAt)} UTC</dd>` : ""}
<dt>contacts / calendar</dt><dd>${kindCell(l)}</dd><dt>last error</dt><dd>${l.lastError ? `${esc(l.lastError.code)}: ${esc(l.lastError.message)} (${time(l.lastError.at)} UTC)` : "none"}</dd></dl>
<section aria-labelledby="h-alerts"><h2 id="h-alerts">Alerts (${alerts.length})</h2><ul>${alerts.map((a) => alertItem(a, false)).join("") || "<li>none</li>"}</ul></section>
<section aria-labelledby="h-subs"><h2 id="h-subs">Subscriptions</h2><p>Graph subscription until: ${l.subscriptionExpiresAt ? `${time(l.subscriptionExpiresAt)} UTC` : "none"}</p>
${subs.length ? `<div class="scroll" tabindex="0" role="region" aria-label="Subscriptions table"><table><thead><tr><th scope="col">kind</th><th scope="col">state</th><th scope="col">last error</th></tr></thead><tbody>${subs.map(([k, h]) => `<tr><td>${esc(k)}</td><td>${esc(h!.state)}${h!.state !== "active" ? " (polled meanwhile)" : ""}</td><td>${h!.lastError ? esc(h!.lastError.message) : "-"}</td></tr>`).join("")}</tbody></table></div>` : ""}</section>
<section aria-labelledby="h-day"><h2 id="h-day">Last day</h2>${dayCharts(`Link ${l.voiceMailbox}`, lastDay([hours], now))}</section>
<section aria-labelledby="h-runs"><h2 id="h-runs">Recent runs (${runs.length})</h2><p>Runs that changed something or failed, newest first.</p>
<div class="scroll" tabindex="0" role="region" aria-label="Recent runs table"><table><thead><tr><th scope="col">time (UTC)</th><th scope="col">kind</th><th scope="col">reason</th><th scope="col">outcome</th><th scope="col">actions</th><th scope="col">duration</th><th scope="col">lag</th></tr></thead><tbody>
${runs.map((x) => `<tr class="${x.outcome === "failed" ? "bad" : ""}"><td>${time(x.at)}:${esc(x.at.slice(17, 19))}</td><td>${esc(x.kind)}</td><td>${esc(x.reason)}</td><td>${esc(x.outcome)}${x.error ? ` (${esc(x.error)})` : ""}</td><td>${Object.entries(x.actions ?? {}).map(([k, n]) => `${esc(k)} ${n}`).join(", ") || "-"}</td><td>${x.ms} ms</td><td>${x.lagMs === undefined ? "-" : `${(x.lagMs / 1000).toFixed(1)} s`}</td></tr>`).join("") || `<tr><td colspan="7">No run recorded yet.</td></tr>`}</tbody></table></div></section>
${l.skipped.length ? `<section aria-labelledby="h-skipped"><h2 id="h-skipped">Skipped messages (${l.skipped.length})</h2><ul>${l.skipped.map((s) => `<li><code>${esc(s.code)}</code>: ${esc(s.message)}</li>`).join("")}</ul></section>` : ""}
</main>`;
  return page(`umconnect: ${l.voiceMailbox}`, body);
}

export function notFoundPage(what: string): HttpResponseInit {
  return page("umconnect: not found", `<main id="main"><h1>Not found</h1><p>${esc(what)}</p><p><a href="?format=html">All mailboxes</a></p></main>`, 404);
}
