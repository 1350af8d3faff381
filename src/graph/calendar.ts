/**
 * Exchange side of the calendar mirror: the primary calendar's occurrences in a window,
 * through calendarView delta (https://learn.microsoft.com/en-us/graph/api/event-delta):
 * startDateTime/endDateTime on the first call only (they are baked into the links), no
 * $select, times in UTC (no Prefer: outlook.timezone). `@removed` also comes for events
 * outside the window that changed, so the caller filters by the window.
 */
import { ConnectorError } from "../errors.js";
import type { Occurrence, ResponseKind, Sensitivity, ShowAs } from "../formats/icalendar.js";
import type { GraphClient } from "./client.js";

type Json = Record<string, unknown>;

export interface CalendarChanges {
  full: boolean;
  upserted: Occurrence[];
  removed: string[];
  deltaLink: string;
}

const SHOW_AS = new Set(["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"]);
const SENSITIVITY = new Set(["normal", "personal", "private", "confidential"]);

/** Graph event (an occurrence or single instance, in UTC) -> Occurrence. */
export function toOccurrence(e: Json): Occurrence {
  const isAllDay = e.isAllDay === true;
  const when = (v: unknown) => {
    const dt = String((v as { dateTime?: string } | undefined)?.dateTime ?? "");
    const tz = String((v as { timeZone?: string } | undefined)?.timeZone ?? "UTC");
    if (!/^\d{4}-\d{2}-\d{2}T/.test(dt)) throw new ConnectorError("GRAPH_REQUEST_FAILED", `event ${String(e.id)} has no usable time`);
    if (isAllDay) return dt.slice(0, 10);
    if (tz.toUpperCase() !== "UTC") throw new ConnectorError("GRAPH_REQUEST_FAILED", `event ${String(e.id)} is not in UTC (${tz})`);
    return new Date(`${dt.slice(0, 23)}Z`).toISOString();
  };
  const addr = (x: unknown) => (x as { emailAddress?: { name?: string; address?: string } } | undefined)?.emailAddress;
  const organizer = addr(e.organizer);
  return {
    id: String(e.id),
    iCalUId: typeof e.iCalUId === "string" ? e.iCalUId : undefined,
    subject: typeof e.subject === "string" ? e.subject : undefined,
    start: when(e.start),
    end: when(e.end),
    isAllDay,
    showAs: (SHOW_AS.has(String(e.showAs)) ? e.showAs : "busy") as ShowAs,
    sensitivity: (SENSITIVITY.has(String(e.sensitivity)) ? e.sensitivity : "normal") as Sensitivity,
    location: (e.location as { displayName?: string } | undefined)?.displayName || undefined,
    organizer: organizer?.address ? { name: organizer.name, address: organizer.address } : undefined,
    attendees: ((e.attendees as Json[] | undefined) ?? []).filter((a) => addr(a)?.address).map((a) => ({
      name: addr(a)!.name, address: addr(a)!.address!, response: ((a.status as { response?: string } | undefined)?.response ?? "none") as ResponseKind,
      type: a.type as "required" | "optional" | "resource" | undefined,
    })),
    myResponse: ((e.responseStatus as { response?: string } | undefined)?.response as ResponseKind | undefined) ?? undefined,
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
    let next = "";
    while (url) {
      const page: { value: Json[]; "@odata.nextLink"?: string; "@odata.deltaLink"?: string } =
        await this.graph.request({ method: "GET", url, headers: { Prefer: `odata.maxpagesize=${pageSize}` }, mailbox: this.userId });
      for (const e of page.value) {
        const id = String(e.id);
        if (e["@removed"]) { removed.add(id); upserted.delete(id); }
        else if (e.type === "seriesMaster") continue; // occurrences carry the series' times
        else { upserted.set(id, toOccurrence(e)); removed.delete(id); }
      }
      url = page["@odata.nextLink"];
      if (page["@odata.deltaLink"]) next = page["@odata.deltaLink"];
    }
    if (!next) throw new ConnectorError("GRAPH_REQUEST_FAILED", "calendarView delta ended without a deltaLink", { mailboxId: this.userId });
    return { full: deltaLink === undefined, upserted: [...upserted.values()], removed: [...removed], deltaLink: next };
  }
}
