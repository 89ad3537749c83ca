import { CronExpressionParser } from 'cron-parser';
import { CRON_FIELDS, checkCronField } from './cronFields.js';
import { formatDuration, parseDuration } from './duration.js';
import type { ParseResult } from './result.js';
import { fromWallClock, isValidTimezone, toWallClock } from './timezone.js';

export { isValidTimezone } from './timezone.js';
export type { ParseResult } from './result.js';

/** A cron schedule; fires when the wall clock of the job's time zone matches. */
export interface CronSchedule {
  kind: 'cron';
  /** The schedule as written, trimmed. */
  text: string;
  /** Six fields, seconds first, macros expanded, names upper-cased: `0 0 0 * * *`. */
  expression: string;
}

/** A fixed interval; fires at `anchor + k * everyMs` for k = 1, 2, ... */
export interface IntervalSchedule {
  kind: 'interval';
  /** The schedule as written, trimmed. */
  text: string;
  everyMs: number;
}

/** A parsed, validated `schedule` value of a job file. */
export type Schedule = CronSchedule | IntervalSchedule;

/** The shortest `@every` interval accepted. */
export const MIN_INTERVAL_MS = 1_000;

/**
 * How far ahead a cron expression is searched for a first match before it is declared
 * never to fire. Long enough for Feb 29 and for the fifth Monday of a February (28 years).
 */
export const NEVER_FIRES_HORIZON_YEARS = 30;

const HORIZON_START = Date.UTC(2000, 0, 1);

const MACROS: Readonly<Record<string, string>> = {
  '@yearly': '0 0 0 1 1 *',
  '@annually': '0 0 0 1 1 *',
  '@monthly': '0 0 0 1 * *',
  '@weekly': '0 0 0 * * 0',
  '@daily': '0 0 0 * * *',
  '@midnight': '0 0 0 * * *',
  '@hourly': '0 0 * * * *',
};

function parseInterval(text: string, durationText: string): ParseResult<Schedule> {
  const duration = parseDuration(durationText);
  if (!duration.ok) return duration;
  if (duration.value < MIN_INTERVAL_MS) {
    return {
      ok: false,
      error: `interval ${formatDuration(duration.value)} is shorter than the minimum of ${formatDuration(MIN_INTERVAL_MS)}`,
    };
  }
  return { ok: true, value: { kind: 'interval', text, everyMs: duration.value } };
}

function parseCron(text: string, fields: string[]): ParseResult<Schedule> {
  const errors = fields.map((field, i) => checkCronField(CRON_FIELDS[i]!, field)).filter((e) => e !== null);
  if (errors.length > 0) return { ok: false, error: errors.join('; ') };
  const expression = fields.map((f) => f.toUpperCase()).join(' ');
  const neverFires = `"${text}" never fires: no date matches it`;
  try {
    const end = new Date(HORIZON_START);
    end.setUTCFullYear(end.getUTCFullYear() + NEVER_FIRES_HORIZON_YEARS);
    CronExpressionParser.parse(expression, { tz: 'UTC', currentDate: HORIZON_START, endDate: end }).next();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // cron-parser refuses day/month pairs that never exist (Feb 30) at parse time, and
    // fails `next()` when the horizon passes without a match.
    if (/day of month|time span|loop limit/i.test(message)) return { ok: false, error: neverFires };
    return { ok: false, error: `cron expression: ${message}` };
  }
  return { ok: true, value: { kind: 'cron', text, expression } };
}

/**
 * Parses a job's `schedule`: a 5-field cron expression (`min hour dom month dow`), a 6-field
 * one with seconds first, a macro (`@hourly @daily @midnight @weekly @monthly @yearly
 * @annually`), or an interval (`@every 1h30m`, or the bare `1h30m`, at least 1 s).
 * A cron expression that can never fire (`0 0 30 2 *`) is an error.
 */
export function parseSchedule(text: string): ParseResult<Schedule> {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: false, error: 'the schedule is empty' };
  if (trimmed.startsWith('@')) {
    const [word = '', ...rest] = trimmed.split(/\s+/);
    const name = word.toLowerCase();
    if (name === '@every') {
      if (rest.length !== 1) return { ok: false, error: '@every takes one duration, e.g. @every 1h30m' };
      return parseInterval(trimmed, rest[0]!);
    }
    const expression = MACROS[name];
    if (expression !== undefined && rest.length === 0) return parseCron(trimmed, expression.split(' '));
    return {
      ok: false,
      error: `unknown schedule "${trimmed}": use ${Object.keys(MACROS).join(', ')} or @every <duration>`,
    };
  }
  const fields = trimmed.split(/\s+/);
  if (fields.length === 1 && /^\d+(\.\d+)?[a-z]/i.test(trimmed)) return parseInterval(trimmed, trimmed);
  if (fields.length !== 5 && fields.length !== 6) {
    return {
      ok: false,
      error:
        `expected 5 cron fields (minute hour day-of-month month day-of-week) or 6 (second first), ` +
        `a macro such as @daily, or an interval such as 1h30m; got ${fields.length} field${fields.length === 1 ? '' : 's'}`,
    };
  }
  if (fields.length === 5) fields.unshift('0');
  return parseCron(trimmed, fields);
}

/** Where and from when to compute fire times. */
export interface FireTimeOptions {
  /** Fire times returned are strictly after this instant. */
  after: Date;
  /** How many fire times to return; default 1. */
  count?: number;
  /** IANA zone whose wall clock a cron expression reads; default `UTC`. Intervals ignore it. */
  timezone?: string;
  /** Start of an interval's count (the job's creation or last change); default `after`. */
  anchor?: Date;
}

function checkInstant(date: Date, what: string): number {
  const ms = date.getTime();
  if (Number.isNaN(ms)) throw new RangeError(`${what} is not a valid date`);
  return ms;
}

/**
 * The next `count` fire times of `schedule`, strictly after `after`, in increasing order.
 *
 * Cron expressions follow the wall clock of `timezone`. Across daylight-saving changes each
 * matching wall-clock time fires once: a time skipped when clocks go forward fires at the
 * first instant after the gap (02:30 on a 02:00->03:00 night fires at 03:00), and a time
 * repeated when clocks go back fires at its first occurrence only.
 *
 * @throws RangeError for an unknown time zone, an invalid date or a bad count.
 */
export function nextFireTimes(schedule: Schedule, options: FireTimeOptions): Date[] {
  const count = options.count ?? 1;
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`count must be a whole number >= 0, got ${count}`);
  const after = checkInstant(options.after, 'after');
  if (schedule.kind === 'interval') {
    const anchor = options.anchor === undefined ? after : checkInstant(options.anchor, 'anchor');
    const first = Math.max(1, Math.floor((after - anchor) / schedule.everyMs) + 1);
    return Array.from({ length: count }, (_, i) => new Date(anchor + (first + i) * schedule.everyMs));
  }
  const timezone = options.timezone ?? 'UTC';
  if (!isValidTimezone(timezone)) throw new RangeError(`unknown time zone "${timezone}"`);
  // Iterate matches on the wall-clock timeline, then map each to an instant. The mapping is
  // monotonic, and no wall time at or before wall(after) maps to an instant after `after`.
  const matches = CronExpressionParser.parse(schedule.expression, {
    tz: 'UTC',
    currentDate: toWallClock(after, timezone),
  });
  const out: Date[] = [];
  let last = after;
  while (out.length < count) {
    const instant = fromWallClock(matches.next().getTime(), timezone);
    if (instant > last) {
      out.push(new Date(instant));
      last = instant;
    }
  }
  return out;
}
