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
import { wallTimeToUtc } from "../formats/timeZones.js";
import type { GraphClient } from "./client.js";

type Json = Record<string, unknown>;

export interface CalendarChanges {
  full: boolean;
  upserted: Occurrence[];
  removed: string[];
  deltaLink: string;
  /** Events that could not be read, each with its reason (typed code and message). */
  skipped: Array<{ id: string; code: string; message: string }>;
}

/** Asked on every calendarView request: times in UTC (user-list-calendarview, request headers). */
export const PREFER_UTC = 'outlook.timezone="UTC"';

const enumOr = (v: unknown, fallback: string) => (typeof v === "string" && v !== "" ? v : fallback);

/** Graph event (an occurrence or single instance, in any zone) -> Occurrence; CALENDAR_EVENT_UNUSABLE when it has no usable time. */
export function toOccurrence(e: Json): Occurrence {
  const isAllDay = e.isAllDay === true;
  const when = (v: unknown, which: string) => {
    const dt = String((v as { dateTime?: string } | undefined)?.dateTime ?? "");
    const tz = String((v as { timeZone?: string } | undefined)?.timeZone ?? "UTC");
    if (!/^\d{4}-\d{2}-\d{2}(T|$)/.test(dt)) throw new ConnectorError("CALENDAR_EVENT_UNUSABLE", `event has no usable ${which} time`, { graphId: String(e.id) });
    // All-day events are dates in the event's own calendar, whatever the zone (datetimetimezone).
    if (isAllDay) return dt.slice(0, 10);
    try { return wallTimeToUtc(dt, tz); } catch (err) { throw new ConnectorError("CALENDAR_EVENT_UNUSABLE", `event ${which}: ${ensureConnectorError(err).message}`, { graphId: String(e.id), cause: err }); }
  };
  const start = when(e.start, "start");
  const end = when(e.end, "end");
  if (end < start) throw new ConnectorError("CALENDAR_EVENT_UNUSABLE", "event ends before it starts", { graphId: String(e.id) });
  const addr = (x: unknown) => (x as { emailAddress?: { name?: string; address?: string } } | undefined)?.emailAddress;
  const organizer = addr(e.organizer);
  return {
    id: String(e.id),
    iCalUId: typeof e.iCalUId === "string" ? e.iCalUId : undefined,
    subject: typeof e.subject === "string" ? e.subject : undefined,
    start,
    end,
    isAllDay,
    // Evolvable enums: a value Graph adds later is carried (src/formats/icalendar.ts decides
    // how the store shows it); a missing one is the documented default.
    showAs: enumOr(e.showAs, "unknown"),
    sensitivity: enumOr(e.sensitivity, "normal"),
    location: (e.location as { displayName?: string } | undefined)?.displayName || undefined,
    organizer: organizer?.address ? { name: organizer.name, address: organizer.address } : undefined,
    attendees: ((e.attendees as Json[] | undefined) ?? []).filter((a) => addr(a)?.address).map((a) => ({
      name: addr(a)!.name, address: addr(a)!.address!, response: enumOr((a.status as { response?: string } | undefined)?.response, "none"),
      ...(typeof a.type === "string" ? { type: a.type } : {}),
    })),
    myResponse: typeof (e.responseStatus as { response?: unknown } | undefined)?.response === "string" ? (e.responseStatus as { response: string }).response : undefined,
    isCancelled: e.isCancelled === true,
    lastModified: typeof e.lastModifiedDateTime === "string" ? e.lastModifiedDateTime : undefined,
  };
}

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
