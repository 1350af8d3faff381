/**
 * GET /api/admin/status (after adminAuth): the report as JSON, or with `format=html` the pages
 * (src/admin/statusHtml.ts); `link=<linkId>` is one link with its recent runs and hourly figures.
 */
import type { HttpResponseInit } from "@azure/functions";
import type { Deps } from "../app/deps.js";
import { RunHistory } from "../state/runHistory.js";
import { parseStatusQuery, selectLinks, statusReport } from "./status.js";
import { linkPage, notFoundPage, statusPage } from "./statusHtml.js";

export async function statusResponse(deps: Deps, params: URLSearchParams): Promise<HttpResponseInit> {
  const query = parseStatusQuery(params);
  const html = params.get("format") === "html";
  const full = await statusReport(deps);
  const history = new RunHistory(deps.state);
  if (query.link) {
    const l = full.links.find((x) => x.linkId === query.link);
    if (!l) return html ? notFoundPage(`There is no link ${query.link}.`) : { status: 404, jsonBody: { code: "NOT_FOUND", message: `no link ${query.link}` } };
    const h = await history.get(l.linkId);
    const endpointId = l.voiceMailbox.slice(l.voiceMailbox.lastIndexOf("@") + 1);
    // The link's own alerts, and its voice store's (one per store, e.g. a rejected super user).
    const alerts = full.alerts.filter((a) => a.linkId === l.linkId || (!a.linkId && a.endpointId === endpointId));
    const runs = h?.runs ?? [];
    const hours = h?.hours ?? [];
    return html ? linkPage(l, alerts, runs, hours, Date.parse(full.generatedAt)) : { status: 200, jsonBody: { link: l, alerts, runs, hours } };
  }
  const report = selectLinks(full, query);
  if (!html) return { status: 200, jsonBody: report };
  const all = await history.listHours();
  return statusPage(report, query, new Map(all.map((h) => [h.linkId, h.hours])), full);
}
