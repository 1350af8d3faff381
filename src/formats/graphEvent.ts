/**
 * Graph event (https://learn.microsoft.com/en-us/graph/api/resources/event) -> Occurrence,
 * the calendar mirror's model (src/formats/icalendar.ts writes it to the store). Times in any
 * zone Graph answers with are converted to UTC (src/formats/timeZones.ts); all-day events stay
 * dates (datetimetimezone). An event without a usable time is CALENDAR_EVENT_UNUSABLE, so the
 * caller can skip it alone.
 */
import { ConnectorError, ensureConnectorError } from "../errors.js";
import type { Occurrence } from "./icalendar.js";
import { wallTimeToUtc } from "./timeZones.js";

type Json = Record<string, unknown>;

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

