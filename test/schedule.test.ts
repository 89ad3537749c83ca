import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../src/schedule/duration.js';
import { isValidTimezone, nextFireTimes, parseSchedule, type Schedule } from '../src/schedule/schedule.js';

function schedule(text: string): Schedule {
  const result = parseSchedule(text);
  if (!result.ok) throw new Error(`expected "${text}" to parse: ${result.error}`);
  return result.value;
}

function next(text: string, after: string, count: number, timezone = 'UTC', anchor?: string): string[] {
  return nextFireTimes(schedule(text), {
    after: new Date(after),
    count,
    timezone,
    ...(anchor === undefined ? {} : { anchor: new Date(anchor) }),
  }).map((d) => d.toISOString());
}

describe('parseDuration', () => {
  it.each([
    ['30s', 30_000],
    ['500ms', 500],
    ['10m', 600_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['1d2h3m4s5ms', 93_784_005],
    ['1.5h', 5_400_000],
    [' 45s ', 45_000],
  ])('reads %j as %i ms', (text, ms) => {
    expect(parseDuration(text)).toEqual({ ok: true, value: ms });
  });

  it.each([
    ['10 minutes', '"10 minutes" is not a duration; write numbers with units (d, h, m, s, ms), e.g. 30s, 10m or 1h30m'],
    ['30', '"30" has no unit; write numbers with units (d, h, m, s, ms), e.g. 30s, 10m or 1h30m'],
    ['1h30', '"1h30" is not a duration ("30" has no unit); write numbers with units (d, h, m, s, ms), e.g. 30s, 10m or 1h30m'],
    ['0s', '"0s" is not a positive duration'],
    ['', 'the duration is empty; write numbers with units (d, h, m, s, ms), e.g. 30s, 10m or 1h30m'],
    ['-5m', '"-5m" is not a duration; write numbers with units (d, h, m, s, ms), e.g. 30s, 10m or 1h30m'],
    ['5w', '"5w" is not a duration; write numbers with units (d, h, m, s, ms), e.g. 30s, 10m or 1h30m'],
  ])('rejects %j with a message that says why', (text, error) => {
    expect(parseDuration(text)).toEqual({ ok: false, error });
  });

  it('formats durations so that they parse back to the same value', () => {
    for (const ms of [1, 999, 1_000, 61_000, 5_400_000, 86_400_000, 93_784_005]) {
      expect(parseDuration(formatDuration(ms))).toEqual({ ok: true, value: ms });
    }
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(0)).toBe('0s');
    expect(() => formatDuration(-1)).toThrow(RangeError);
  });
});

describe('parseSchedule', () => {
  it.each([
    ['0 0 * * *', '0 0 0 * * *'],
    ['*/15 * * * * *', '*/15 * * * * *'],
    ['0 9 * * mon-fri', '0 0 9 * * MON-FRI'],
    ['@daily', '0 0 0 * * *'],
    ['@midnight', '0 0 0 * * *'],
    ['@hourly', '0 0 * * * *'],
    ['@weekly', '0 0 0 * * 0'],
    ['@monthly', '0 0 0 1 * *'],
    ['@yearly', '0 0 0 1 1 *'],
    ['@annually', '0 0 0 1 1 *'],
    ['0 0 29 2 *', '0 0 0 29 2 *'],
    ['0 0 L * *', '0 0 0 L * *'],
    ['0 0 * * 5L', '0 0 0 * * 5L'],
    ['0 0 * * 1#2', '0 0 0 * * 1#2'],
    ['0 0 30 2 1', '0 0 0 30 2 1'],
  ])('accepts the cron schedule %j as %j (seconds first)', (text, expression) => {
    expect(parseSchedule(text)).toEqual({ ok: true, value: { kind: 'cron', text, expression } });
  });

  it.each([
    ['@every 1h30m', 5_400_000],
    ['1h30m', 5_400_000],
    ['@every 1s', 1_000],
    ['30s', 30_000],
  ])('accepts the interval %j as every %i ms', (text, everyMs) => {
    expect(parseSchedule(text)).toEqual({ ok: true, value: { kind: 'interval', text, everyMs } });
  });

  it.each([
    ['61 0 * * *', 'minute field: 61 is out of range 0-59'],
    ['60 * * * * *', 'second field: 60 is out of range 0-59'],
    ['0 24 * * *', 'hour field: 24 is out of range 0-23'],
    ['0 0 0 * *', 'day-of-month field: 0 is out of range 1-31'],
    ['0 0 1 13 *', 'month field: 13 is out of range 1-12'],
    ['0 0 * * 8', 'day-of-week field: 8 is out of range 0-7'],
    ['0 0 * FOO *', 'month field: "FOO" is not a month (use 1-12 or JAN-DEC)'],
    ['0 0 * * MOON', 'day-of-week field: "MOON" is not a day of the week (use 0-7 or SUN-SAT)'],
    ['x * * * *', 'minute field: "x" is not a number'],
    ['*/0 * * * *', 'minute field: step "0" must be a whole number from 1 to 60'],
    ['0 10-5 * * *', 'hour field: range 10-5 goes backwards (10 > 5)'],
    ['1,,2 * * * *', 'minute field: empty item in the list'],
    ['H * * * *', 'minute field: "H" (a hashed value) is not supported'],
    ['0 0 * * 1#6', 'day-of-week field: "#6" must be #1 to #5 (the week of the month)'],
    ['61 25 * * *', 'minute field: 61 is out of range 0-59; hour field: 25 is out of range 0-23'],
    ['0 0 30 2 *', '"0 0 30 2 *" never fires: no date matches it'],
    ['0 0 31 2 *', '"0 0 31 2 *" never fires: no date matches it'],
    ['0 0 31 4 *', '"0 0 31 4 *" never fires: no date matches it'],
    ['0 0 0 30,31 2 *', '"0 0 0 30,31 2 *" never fires: no date matches it'],
    ['* * * *', 'expected 5 cron fields (minute hour day-of-month month day-of-week) or 6 (second first), a macro such as @daily, or an interval such as 1h30m; got 4 fields'],
    ['@fortnightly', 'unknown schedule "@fortnightly": use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>'],
    ['@every 500ms', 'interval 500ms is shorter than the minimum of 1s'],
    ['500ms', 'interval 500ms is shorter than the minimum of 1s'],
    ['@every', '@every takes one duration, e.g. @every 1h30m'],
    ['@every 10 minutes', '@every takes one duration, e.g. @every 1h30m'],
    ['1h3x', '"1h3x" is not a duration ("3x" is not understood); write numbers with units (d, h, m, s, ms), e.g. 30s, 10m or 1h30m'],
    ['   ', 'the schedule is empty'],
  ])('rejects %j with %j', (text, error) => {
    expect(parseSchedule(text)).toEqual({ ok: false, error });
  });
});

describe('isValidTimezone', () => {
  it('accepts IANA zone names and rejects everything else', () => {
    for (const tz of ['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Kolkata', 'Etc/GMT+5']) {
      expect(isValidTimezone(tz), tz).toBe(true);
    }
    for (const tz of ['Mars/Olympus', '', '+01:00', 'Europe/Pariss', 'UTC; DROP TABLE']) {
      expect(isValidTimezone(tz), tz).toBe(false);
    }
  });
});

describe('nextFireTimes', () => {
  it('returns daily cron fire times strictly after the given instant', () => {
    expect(next('0 0 * * *', '2027-01-01T00:00:00Z', 3)).toEqual([
      '2027-01-02T00:00:00.000Z',
      '2027-01-03T00:00:00.000Z',
      '2027-01-04T00:00:00.000Z',
    ]);
  });

  it('reads the first of six fields as seconds', () => {
    expect(next('*/15 * * * * *', '2027-01-01T00:00:05Z', 4)).toEqual([
      '2027-01-01T00:00:15.000Z',
      '2027-01-01T00:00:30.000Z',
      '2027-01-01T00:00:45.000Z',
      '2027-01-01T00:01:00.000Z',
    ]);
    expect(next('30 0 12 * * *', '2027-01-01T00:00:00Z', 2)).toEqual([
      '2027-01-01T12:00:30.000Z',
      '2027-01-02T12:00:30.000Z',
    ]);
  });

  it('follows the wall clock of the job time zone', () => {
    expect(next('0 9 * * MON-FRI', '2027-01-02T00:00:00Z', 2, 'Europe/Paris')).toEqual([
      '2027-01-04T08:00:00.000Z',
      '2027-01-05T08:00:00.000Z',
    ]);
    expect(next('0 9 * * *', '2027-07-01T00:00:00Z', 1, 'Europe/Paris')).toEqual(['2027-07-01T07:00:00.000Z']);
  });

  it('finds Feb 29 in the next leap year', () => {
    expect(next('0 0 29 2 *', '2027-01-01T00:00:00Z', 2)).toEqual([
      '2028-02-29T00:00:00.000Z',
      '2032-02-29T00:00:00.000Z',
    ]);
  });

  it('fires a time skipped by spring-forward once, at the end of the gap (New York, 2027-03-14)', () => {
    expect(next('30 2 * * *', '2027-03-13T12:00:00Z', 2, 'America/New_York')).toEqual([
      '2027-03-14T07:00:00.000Z',
      '2027-03-15T06:30:00.000Z',
    ]);
    expect(next('0 2 * * *', '2027-03-13T12:00:00Z', 2, 'America/New_York')).toEqual([
      '2027-03-14T07:00:00.000Z',
      '2027-03-15T06:00:00.000Z',
    ]);
    expect(next('*/30 * * * *', '2027-03-14T05:45:00Z', 4, 'America/New_York')).toEqual([
      '2027-03-14T06:00:00.000Z',
      '2027-03-14T06:30:00.000Z',
      '2027-03-14T07:00:00.000Z',
      '2027-03-14T07:30:00.000Z',
    ]);
    expect(next('0 * * * *', '2027-03-14T05:30:00Z', 3, 'America/New_York')).toEqual([
      '2027-03-14T06:00:00.000Z',
      '2027-03-14T07:00:00.000Z',
      '2027-03-14T08:00:00.000Z',
    ]);
  });

  it('fires a time repeated by fall-back once, at its first occurrence (New York, 2027-11-07)', () => {
    expect(next('0 1 * * *', '2027-11-06T12:00:00Z', 2, 'America/New_York')).toEqual([
      '2027-11-07T05:00:00.000Z',
      '2027-11-08T06:00:00.000Z',
    ]);
    expect(next('30 1 * * *', '2027-11-06T12:00:00Z', 2, 'America/New_York')).toEqual([
      '2027-11-07T05:30:00.000Z',
      '2027-11-08T06:30:00.000Z',
    ]);
    expect(next('*/30 * * * *', '2027-11-07T04:45:00Z', 4, 'America/New_York')).toEqual([
      '2027-11-07T05:00:00.000Z',
      '2027-11-07T05:30:00.000Z',
      '2027-11-07T07:00:00.000Z',
      '2027-11-07T07:30:00.000Z',
    ]);
    expect(next('0 * * * *', '2027-11-07T04:30:00Z', 3, 'America/New_York')).toEqual([
      '2027-11-07T05:00:00.000Z',
      '2027-11-07T07:00:00.000Z',
      '2027-11-07T08:00:00.000Z',
    ]);
  });

  it('does not fire again for a repeated time when asked from inside the second occurrence', () => {
    expect(next('*/30 * * * *', '2027-11-07T06:15:00Z', 2, 'America/New_York')).toEqual([
      '2027-11-07T07:00:00.000Z',
      '2027-11-07T07:30:00.000Z',
    ]);
  });

  it('fires a midnight skipped by spring-forward at the first valid instant of that day (Sao Paulo, 2018-11-04)', () => {
    expect(next('0 0 * * *', '2018-11-03T12:00:00Z', 2, 'America/Sao_Paulo')).toEqual([
      '2018-11-04T03:00:00.000Z',
      '2018-11-05T02:00:00.000Z',
    ]);
  });

  it('counts intervals from the anchor, strictly after the given instant', () => {
    expect(next('@every 1h30m', '2027-01-01T02:00:00Z', 3, 'UTC', '2027-01-01T00:00:00Z')).toEqual([
      '2027-01-01T03:00:00.000Z',
      '2027-01-01T04:30:00.000Z',
      '2027-01-01T06:00:00.000Z',
    ]);
    expect(next('1h30m', '2027-01-01T03:00:00Z', 1, 'UTC', '2027-01-01T00:00:00Z')).toEqual([
      '2027-01-01T04:30:00.000Z',
    ]);
    expect(next('@every 10s', '2027-01-01T00:00:00Z', 2, 'UTC', '2027-01-01T00:00:00Z')).toEqual([
      '2027-01-01T00:00:10.000Z',
      '2027-01-01T00:00:20.000Z',
    ]);
  });

  it('ignores daylight saving for intervals, which are fixed lengths of time', () => {
    expect(next('@every 1h', '2027-03-14T06:30:00Z', 2, 'America/New_York', '2027-03-14T05:00:00Z')).toEqual([
      '2027-03-14T07:00:00.000Z',
      '2027-03-14T08:00:00.000Z',
    ]);
  });

  it('refuses an unknown time zone and a bad count', () => {
    expect(() => next('0 0 * * *', '2027-01-01T00:00:00Z', 1, 'Mars/Olympus')).toThrow(RangeError);
    expect(() => next('0 0 * * *', '2027-01-01T00:00:00Z', -1)).toThrow(RangeError);
  });
});
