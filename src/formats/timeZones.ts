/**
 * Graph's dateTimeTimeZone -> a UTC instant.
 *
 * umconnect asks for UTC (`Prefer: outlook.timezone="UTC"`,
 * https://learn.microsoft.com/en-us/graph/api/user-list-calendarview#request-headers), but
 * Graph still answers with other zone names in practice: `tzone://Microsoft/Utc` (the
 * Exchange-internal name of UTC), Windows zone names ("W. Europe Standard Time") and IANA
 * names, all documented as valid values of dateTimeTimeZone.timeZone
 * (https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone). Windows names are
 * mapped to IANA by CLDR's windowsZones table (the windows-iana package); the wall time is then
 * resolved with the platform's tz database. A zone nothing knows (`tzone://Microsoft/Custom`,
 * a typo) is a typed error, so the one event is skipped with that reason.
 */
import { findIana } from "windows-iana";
import { ConnectorError } from "../errors.js";

const UTC_NAMES = new Set(["utc", "tzone://microsoft/utc", "etc/utc", "gmt", "z", "etc/gmt", "coordinated universal time"]);

/** The IANA zone for a Graph zone name, or undefined when none fits. */
export function ianaZoneOf(timeZone: string): string | undefined {
  const tz = timeZone.trim();
  if (UTC_NAMES.has(tz.toLowerCase())) return "UTC";
  const candidates = [tz, ...findIana(tz)];
  for (const zone of candidates) {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: zone });
      return zone;
    } catch { /* not a zone the platform knows: try the next */ }
  }
  return undefined;
}

/** Minutes `zone` is ahead of UTC at the instant `utcMs`. */
function offsetMinutes(zone: string, utcMs: number): number {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }).formatToParts(new Date(utcMs));
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value);
  const local = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return Math.round((local - Math.floor(utcMs / 1000) * 1000) / 60_000);
}

/**
 * `2026-03-29T09:00:00.0000000` in `timeZone` -> ISO UTC instant. A wall time in a DST gap
 * moves forward (as Exchange does); an ambiguous one takes the first (daylight) instant.
 */
export function wallTimeToUtc(dateTime: string, timeZone: string): string {
  const m = dateTime.match(/^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(?::\d{2})?)(\.\d+)?(Z|[+-]\d{2}:\d{2})?$/);
  if (!m) throw new ConnectorError("BAD_REQUEST", `event time '${dateTime.slice(0, 40)}' is not an ISO date-time`);
  const ms = m[3] ? Number(`0${m[3]}`.slice(0, 5)) * 1000 : 0;
  if (m[4]) {
    // An explicit offset wins over the zone name (not what Graph sends, but unambiguous).
    const d = Date.parse(`${m[1]}T${m[2]!.length === 5 ? `${m[2]}:00` : m[2]}${m[4]}`);
    if (Number.isNaN(d)) throw new ConnectorError("BAD_REQUEST", `event time '${dateTime}' is not a valid instant`);
    return new Date(d + Math.round(ms)).toISOString();
  }
  const zone = ianaZoneOf(timeZone);
  if (!zone) throw new ConnectorError("BAD_REQUEST", `time zone '${timeZone.slice(0, 80)}' is not one Windows or IANA knows`);
  const guess = Date.parse(`${m[1]}T${m[2]!.length === 5 ? `${m[2]}:00` : m[2]}Z`);
  if (Number.isNaN(guess)) throw new ConnectorError("BAD_REQUEST", `event time '${dateTime}' is not a valid date`);
  if (zone === "UTC") return new Date(guess + Math.round(ms)).toISOString();
  // The two offsets around the wall time: a candidate is real when the zone has that offset at
  // it. Both real (the autumn fold): the earlier; neither (the spring gap): the later one,
  // which is the wall time moved forward by the gap.
  const offsets = [...new Set([offsetMinutes(zone, guess - 86_400_000), offsetMinutes(zone, guess + 86_400_000), offsetMinutes(zone, guess)])];
  const candidates = offsets.map((o) => guess - o * 60_000);
  const real = candidates.filter((c) => candidates.length === 1 || offsets.includes(offsetMinutes(zone, c)) && guess - offsetMinutes(zone, c) * 60_000 === c).sort((a, b) => a - b);
  const utc = real.length ? real[0]! : Math.max(...candidates);
  return new Date(utc + Math.round(ms)).toISOString();
}
