import { CronExpressionParser } from 'cron-parser';
import { CRON_FIELDS, checkCronField } from './cronFields.js';
import { formatDuration, parseDuration } from './duration.js';
import type { ParseResult } from './result.js';
import { fromWallClock, isValidTimezone, toWallClock } from './timezone.js';

export { isValidTimezone, readInZone } from './timezone.js';
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
 * never to fire. Long enough for any day-of-week and date combination of the Gregorian
 * calendar's 28-year cycle (the fifth Monday of a February).
 */
export const NEVER_FIRES_HORIZON_YEARS = 30;

/**
 * A cron expression must fire at least once in every this many years (Feb 29 does, with gaps of
 * 4). Rarer ones (the fifth Thursday of February, every 28 years) are refused: cron-parser walks
 * one day per step, so each of their fire times costs thousands of steps, and the API, the
 * scheduler and `nextRuns` would pay that on every question. See docs/design.md#off-the-loop.
 */
export const MAX_FIRE_GAP_YEARS = 5;

const HORIZON_START = Date.UTC(2000, 0, 1);
const YEAR_MS = 365.25 * 24 * 3600 * 1000;

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
  try {
    CronExpressionParser.parse(expression, { tz: 'UTC', currentDate: HORIZON_START });
  } catch (error) {
    return { ok: false, error: cronError(text, error) };
  }
  // Which days match depends only on the day-of-month, month and day-of-week fields: every
  // expression with the same three shares one verdict, whatever its seconds, minutes and hours.
  const problem = dayVerdict(text, expression.split(' ').slice(3).join(' '));
  if (problem !== null) return { ok: false, error: problem };
  return { ok: true, value: { kind: 'cron', text, expression } };
}

function cronError(text: string, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // cron-parser refuses day/month pairs that never exist (Feb 30) at parse time, and fails
  // `next()` when the horizon passes without a match.
  if (/day of month|time span|loop limit/i.test(message)) return `"${text}" never fires: no date matches it`;
  return `cron expression: ${message}`;
}

/** What is wrong with a set of day fields (`dom month dow`), given the schedule's text; null when fine. */
type DayVerdict = ((text: string) => string) | null;

/** Verdicts by day fields: bounded, and cleared when full. */
const dayVerdicts = new Map<string, DayVerdict>();
const MAX_DAY_VERDICTS = 10_000;

function dayVerdict(text: string, dayFields: string): string | null {
  let verdict = dayVerdicts.get(dayFields);
  if (verdict === undefined) {
    if (dayVerdicts.size >= MAX_DAY_VERDICTS) dayVerdicts.clear();
    verdict = judgeDays(dayFields);
    dayVerdicts.set(dayFields, verdict);
  }
  return verdict === null ? null : verdict(text);
}

/** The next midnight matching `days` in [from, until], or null. */
function nextDay(days: string, from: number, until: number): number | null {
  try {
    const it = CronExpressionParser.parse(`0 0 0 ${days}`, { tz: 'UTC', currentDate: from, endDate: until });
    return it.next().getTime();
  } catch (error) {
    if (error instanceof Error && /time span|loop limit/i.test(error.message)) return null;
    throw error;
  }
}

/**
 * Walks one 28-year cycle of the calendar from 2000 and checks that no gap between matching days
 * is longer than MAX_FIRE_GAP_YEARS (to within a year: the walk samples each year once at least).
 * Costs at most about 30 years of cron-parser's day steps, once per set of day fields.
 */
function judgeDays(days: string): DayVerdict {
  const gapMs = MAX_FIRE_GAP_YEARS * YEAR_MS;
  const cycleEnd = HORIZON_START + 28 * YEAR_MS;
  let cursor = HORIZON_START - 1;
  while (cursor < cycleEnd) {
    const match = nextDay(days, cursor, cursor + gapMs);
    if (match === null) return rarity(days, cursor);
    cursor = Math.max(match, cursor + YEAR_MS);
  }
  return null;
}

function rarity(days: string, from: number): (text: string) => string {
  const first = nextDay(days, from, from + NEVER_FIRES_HORIZON_YEARS * YEAR_MS);
  if (first === null) return (text) => `"${text}" never fires: no date matches it`;
  const then = nextDay(days, first + 1, first + NEVER_FIRES_HORIZON_YEARS * YEAR_MS);
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const example = then === null ? `after ${day(from)} the next matching day is ${day(first)}` : `${day(first)}, then ${day(then)}`;
  return (text) => `"${text}" fires too rarely: its days can be more than ${MAX_FIRE_GAP_YEARS} years apart (${example}); a schedule must fire at least once every ${MAX_FIRE_GAP_YEARS} years`;
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
  const key = `${schedule.expression}|${timezone}|${after}|${count}`;
  let times = cronTimes.get(key);
  if (times === undefined) {
    times = cronFireTimes(schedule.expression, timezone, after, count);
    if (cronTimes.size >= CRON_TIMES_MAX) cronTimes.clear();
    cronTimes.set(key, times);
  }
  return times.map((t) => new Date(t));
}

/**
 * Cron fire times already computed, by expression, zone, instant and count. Jobs on one
 * expression with one cursor (a herd, a thousand per-second schedules, many `@hourly` jobs) then
 * cost the scheduler one cron-parser search, not one each: a rare expression's search walks
 * day by day (about 0.7 ms for a once-a-year one), on the event loop the API shares.
 */
const cronTimes = new Map<string, number[]>();
const CRON_TIMES_MAX = 10_000;

function cronFireTimes(expression: string, timezone: string, after: number, count: number): number[] {
  // Iterate matches on the wall-clock timeline, then map each to an instant. The mapping is
  // monotonic, and no wall time at or before wall(after) maps to an instant after `after`.
  const matches = CronExpressionParser.parse(expression, {
    tz: 'UTC',
    currentDate: toWallClock(after, timezone),
  });
  const out: number[] = [];
  let last = after;
  while (out.length < count) {
    const instant = fromWallClock(matches.next().getTime(), timezone);
    if (instant > last) {
      out.push(instant);
      last = instant;
    }
  }
  return out;
}
