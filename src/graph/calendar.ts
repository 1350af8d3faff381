/**
 * Exchange side of the calendar mirror: the primary calendar's occurrences in a window,
 * through calendarView delta (https://learn.microsoft.com/en-us/graph/api/event-delta):
 * startDateTime/endDateTime on the first call only (they are baked into the links), no
 * $select. Times are asked for in UTC (`Prefer: outlook.timezone="UTC"`) and any other zone
 * Graph answers with is converted (src/formats/timeZones.ts). `@removed` also comes for events
 * outside the window that changed, so the caller filters by the window. One event that cannot
 * be read (no usable time, a zone nothing knows) is returned in `skipped` with its reason; the
 * rest of the calendar still mirrors.
 */
import { ConnectorError, ensureConnectorError } from "../errors.js";
import type { Occurrence } from "../formats/icalendar.js";
import { toOccurrence } from "../formats/graphEvent.js";
import type { CalendarChanges } from "../sync/ports.js";
import type { GraphClient } from "./client.js";

export type { CalendarChanges } from "../sync/ports.js";
export { toOccurrence } from "../formats/graphEvent.js";

type Json = Record<string, unknown>;

/** Asked on every calendarView request: times in UTC (user-list-calendarview, request headers). */
export const PREFER_UTC = 'outlook.timezone="UTC"';

export class ExchangeCalendar {
  constructor(private readonly graph: GraphClient, private readonly userId: string) {}

  async changes(window: { start: string; end: string }, deltaLink: string | undefined, pageSize = 100): Promise<CalendarChanges> {
    let url: string | undefined = deltaLink
      ?? `/users/${encodeURIComponent(this.userId)}/calendarView/delta?startDateTime=${encodeURIComponent(window.start)}&endDateTime=${encodeURIComponent(window.end)}`;
    const upserted = new Map<string, Occurrence>();
    const removed = new Set<string>();
    const skipped = new Map<string, { id: string; code: string; message: string }>();
    let next = "";
    while (url) {
      const page: { value: Json[]; "@odata.nextLink"?: string; "@odata.deltaLink"?: string } =
        await this.graph.request({ method: "GET", url, headers: { Prefer: `odata.maxpagesize=${pageSize}, ${PREFER_UTC}` }, mailbox: this.userId });
      for (const e of page.value) {
        const id = String(e.id);
        if (e["@removed"]) { removed.add(id); upserted.delete(id); skipped.delete(id); continue; }
        if (e.type === "seriesMaster") continue; // occurrences carry the series' times
        removed.delete(id);
        try {
          upserted.set(id, toOccurrence(e));
          skipped.delete(id);
        } catch (err) {
          const c = ensureConnectorError(err);
          if (c.code !== "CALENDAR_EVENT_UNUSABLE") throw c;
          upserted.delete(id);
          skipped.set(id, { id, code: c.code, message: c.message });
        }
      }
      url = page["@odata.nextLink"];
      if (page["@odata.deltaLink"]) next = page["@odata.deltaLink"];
    }
    if (!next) throw new ConnectorError("GRAPH_REQUEST_FAILED", "calendarView delta ended without a deltaLink", { mailboxId: this.userId });
    return { full: deltaLink === undefined, upserted: [...upserted.values()], removed: [...removed], deltaLink: next, skipped: [...skipped.values()] };
  }
}
