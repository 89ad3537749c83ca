import { SchedulePreviewDocument } from '@kiln/sdk';
import { UsageError } from './clientConfig.js';
import type { CommandContext, ExitCode } from './commands.js';
import type { JsonFlag } from './jobCommands.js';
import { table } from './output.js';

/** The most fire times the API previews at once (services/schedules.ts). */
export const MAX_PREVIEW = 100;

/** One fire time as the wall clock of `timeZone` shows it, with that zone's UTC offset then. */
export interface WallClock {
  at: string;
  local: string;
  utcOffset: string;
}

/**
 * `2026-03-29 03:00:00` and `+02:00` for an instant in a zone. The offset is read per instant, so
 * the rows on either side of a daylight-saving change show different offsets.
 */
export function wallClock(at: string, timeZone: string): WallClock {
  const date = new Date(at);
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    timeZoneName: 'longOffset',
  }).formatToParts(date);
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? '';
  // longOffset is `GMT+02:00`, or plain `GMT` for a zero offset.
  const offset = part('timeZoneName').replace(/^GMT/, '') || '+00:00';
  return { at, local: `${part('year')}-${part('month')}-${part('day')} ${part('hour')}:${part('minute')}:${part('second')}`, utcOffset: offset };
}

/**
 * `kiln preview "<schedule>" [--tz Zone] [--count n]`: the next fire times of a schedule, computed
 * by the server as its scheduler would, each in the zone's wall clock with its UTC offset.
 */
export async function preview(ctx: CommandContext, [schedule, ...extra]: string[], opts: JsonFlag & { tz: string | undefined; count: number }): Promise<ExitCode> {
  if (!schedule) throw new UsageError('give the schedule in quotes, e.g. kiln preview "0 30 2 * * *" --tz Europe/Berlin');
  if (extra.length > 0) throw new UsageError(`quote the schedule as one argument: kiln preview "${[schedule, ...extra].join(' ')}"`);
  if (opts.count < 1 || opts.count > MAX_PREVIEW) throw new UsageError(`--count takes 1 to ${MAX_PREVIEW}, got ${opts.count}`);
  const timeZone = opts.tz ?? 'UTC';
  const { schedulePreview } = await (await ctx.client()).request(SchedulePreviewDocument, { schedule, timezone: timeZone, count: opts.count });
  const fires = schedulePreview.map((at) => wallClock(at, timeZone));
  if (opts.json) {
    ctx.out.json({ schedule, timezone: timeZone, fires });
    return 0;
  }
  const rows = [[`TIME (${timeZone})`, 'UTC OFFSET', 'UTC']];
  let previous: string | null = null;
  for (const f of fires) {
    // A change of offset between two fire times (daylight saving) is marked where it happens.
    const shift = previous !== null && previous !== f.utcOffset ? ctx.out.paint('yellow', ` (was ${previous})`) : '';
    rows.push([f.local, f.utcOffset + shift, f.at]);
    previous = f.utcOffset;
  }
  for (const line of table(rows)) ctx.out.line(line);
  return 0;
}
