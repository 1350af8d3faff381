/**
 * Wall-clock times in a named zone -> UTC, for events created with `{dateTime, timeZone}`.
 * Graph accepts IANA names and Windows zone names
 * (https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone); the simulator knows
 * the Windows names the tests use, mapped to IANA by CLDR's windowsZones table.
 */
import { ODataError } from "./odata.js";

const WINDOWS_TO_IANA: Record<string, string> = {
  "UTC": "UTC",
  "W. Europe Standard Time": "Europe/Berlin",
  "GMT Standard Time": "Europe/London",
  "Pacific Standard Time": "America/Los_Angeles",
  "Eastern Standard Time": "America/New_York",
  "Tokyo Standard Time": "Asia/Tokyo",
  "AUS Eastern Standard Time": "Australia/Sydney",
  "India Standard Time": "Asia/Kolkata",
};

export function ianaZone(tz: string): string {
  const zone = WINDOWS_TO_IANA[tz] ?? tz;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return zone;
  } catch {
    throw new ODataError("ErrorTimeZoneNotSupported", `Time zone '${tz}' is not supported.`);
  }
}

/** Minutes the zone is ahead of UTC at the instant `utcMs`. */
function offsetMinutes(zone: string, utcMs: number): number {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }).formatToParts(new Date(utcMs));
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value);
  const local = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return Math.round((local - Math.floor(utcMs / 1000) * 1000) / 60_000);
}

/** `2026-03-29T09:00:00(.0000000)` in `tz` -> the UTC instant (a gap time moves forward, as Exchange does). */
export function zonedToUtc(wall: string, tz: string): Date {
  const zone = ianaZone(tz);
  const m = wall.match(/^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}(?::\d{2})?))?/);
  if (!m) throw new ODataError("BadRequest", `Cannot convert '${wall}' to a date.`);
  const guess = Date.parse(`${m[1]}T${m[2] ?? "00:00:00"}${m[2]?.length === 5 ? ":00" : ""}Z`);
  const first = offsetMinutes(zone, guess - 0);
  let utc = guess - first * 60_000;
  const second = offsetMinutes(zone, utc);
  if (second !== first) utc = guess - second * 60_000;
  return new Date(utc);
}

/** Graph's dateTime format: 7 fractional digits, no zone designator. */
export function graphDateTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$10000");
}

/** The UTC instant as wall time in `tz`, in Graph's format (for `Prefer: outlook.timezone`). */
export function utcToZoned(d: Date, tz: string): string {
  const zone = /^tzone:\/\/microsoft\/utc$/i.test(tz) ? "UTC" : ianaZone(tz);
  const parts = new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }).formatToParts(d);
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? "00";
  return `${get("year")}-${get("month")}-${get("day")}T${get("hour")}:${get("minute")}:${get("second")}.${String(d.getUTCMilliseconds()).padStart(3, "0")}0000`;
}
