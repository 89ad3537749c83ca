/**
 * Times as a job's time zone reads them. The browser's Intl does the reading; the server's
 * `nextFires` says the same for fire times to come, from the zone rules the scheduler uses.
 */

const formats = new Map<string, Intl.DateTimeFormat>();

function formatFor(timezone: string): Intl.DateTimeFormat {
  let format = formats.get(timezone);
  if (format === undefined) {
    try {
      format = new Intl.DateTimeFormat('en-CA', {
        timeZone: timezone,
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
        hourCycle: 'h23',
        timeZoneName: 'longOffset',
      });
    } catch {
      // A zone this browser does not know: read the time in UTC rather than fail the page.
      format = formatFor('UTC');
    }
    formats.set(timezone, format);
  }
  return format;
}

/** `2027-03-28 03:00:00 UTC+02:00`: the wall clock in `timezone` and its offset then. */
export function inZone(iso: string, timezone: string): string {
  const parts: Record<string, string> = {};
  for (const part of formatFor(timezone).formatToParts(new Date(iso))) parts[part.type] = part.value;
  const offset = (parts.timeZoneName ?? 'GMT').replace(/^GMT$/, 'GMT+00:00').replace('GMT', 'UTC');
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${offset}`;
}

/** `1 m 05 s`, `350 ms`: a duration for a table cell. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} m`;
}
