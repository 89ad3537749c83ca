/**
 * Conversions between instants and wall-clock readings in an IANA time zone.
 *
 * A wall-clock reading is represented as the epoch milliseconds of the same calendar fields
 * read as UTC, so `2027-03-14 02:30` local is `Date.UTC(2027, 2, 14, 2, 30)`. That timeline
 * has no daylight-saving jumps, which is what cron fields describe.
 */

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timezone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timezone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timezone, formatter);
  }
  return formatter;
}

function isUtc(timezone: string): boolean {
  return timezone === 'UTC' || timezone === 'Etc/UTC';
}

/**
 * True for a time zone name the runtime knows (IANA names such as `Europe/Paris`, `UTC`).
 * Offsets such as `+01:00` and unknown names such as `Mars/Olympus` are rejected.
 */
export function isValidTimezone(timezone: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(timezone) || timezone.length > 64) return false;
  try {
    formatterFor(timezone);
    return true;
  } catch {
    return false;
  }
}

/** The wall-clock reading (see the module comment) of `instantMs` in `timezone`. */
export function toWallClock(instantMs: number, timezone: string): number {
  if (isUtc(timezone)) return instantMs;
  const fields: Record<string, number> = {};
  let bc = false;
  for (const part of formatterFor(timezone).formatToParts(instantMs)) {
    if (part.type === 'era') bc = part.value === 'BC';
    else if (part.type !== 'literal') fields[part.type] = Number(part.value);
  }
  const year = bc ? 1 - fields.year! : fields.year!;
  const wall = Date.UTC(year, fields.month! - 1, fields.day!, fields.hour!, fields.minute!, fields.second!);
  const millis = ((instantMs % 1000) + 1000) % 1000;
  return wall + millis;
}

function offsetAt(instantMs: number, timezone: string): number {
  return toWallClock(instantMs, timezone) - instantMs;
}

/**
 * How `instantMs` reads in `timezone`: the wall-clock time without a zone
 * (`2027-03-28T03:00:00`) and the zone's offset from UTC then (`+02:00`), so that a daylight-saving
 * change shows as a change of offset. Offsets with seconds (some zones before 1900) are rounded
 * down to the minute.
 */
export function readInZone(instantMs: number, timezone: string): { wallClock: string; utcOffset: string } {
  const wall = toWallClock(instantMs, timezone);
  const offsetMinutes = Math.floor((wall - instantMs) / 60_000);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  const pad = (n: number) => String(n).padStart(2, '0');
  return {
    wallClock: new Date(Math.floor(wall / 1000) * 1000).toISOString().slice(0, 19),
    utcOffset: `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`,
  };
}

/**
 * The instant at which the clocks of `timezone` show `wallMs`.
 *
 * A reading that happens twice (clocks set back) gives the earlier instant. A reading that
 * never happens (clocks set forward over it) gives the first instant after the gap, when
 * the clocks show the first valid time.
 */
export function fromWallClock(wallMs: number, timezone: string): number {
  if (isUtc(timezone)) return wallMs;
  // Real offsets stay within -12h..+14h, so the instant lies within a day of the reading;
  // assumes at most one offset change in that window, true of every zone since 1900.
  const before = wallMs - offsetAt(wallMs - DAY_MS, timezone);
  const after = wallMs - offsetAt(wallMs + DAY_MS, timezone);
  const matches = [before, after].filter((t) => toWallClock(t, timezone) === wallMs);
  if (matches.length > 0) return Math.min(...matches);
  let lo = Math.min(before, after);
  let hi = Math.max(before, after);
  if (toWallClock(hi, timezone) < wallMs) return hi;
  // Binary search in whole seconds for the first instant whose reading is past `wallMs`.
  lo = Math.floor(lo / 1000) * 1000;
  hi = Math.ceil(hi / 1000) * 1000;
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (toWallClock(mid, timezone) > wallMs) hi = mid;
    else lo = mid;
  }
  return hi;
}
