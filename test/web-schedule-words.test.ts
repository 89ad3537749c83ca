import { describe, expect, it } from 'vitest';
import { describeSchedule } from '../web/src/board/describeSchedule.js';

describe("the board's schedule in words", () => {
  it.each([
    [null, 'as soon as possible (one-off)'],
    ['* * * * * *', 'every second'],
    ['*/5 * * * * *', 'every 5 seconds'],
    ['* * * * *', 'every minute'],
    ['*/15 * * * *', 'every 15 minutes'],
    ['30 * * * * *', 'every minute at second 30'],
    ['0 * * * *', 'every hour, on the hour'],
    ['15 * * * *', 'every hour at minute 15'],
    ['0 */6 * * *', 'every 6 hours at minute 0'],
    ['0 2 * * *', 'every day at 02:00'],
    ['30 9 * * 1-5', 'at 09:30 on Monday–Friday'],
    ['0 9 * * MON,FRI', 'at 09:00 on Monday, Friday'],
    ['0 0 1 * *', 'at 00:00 on the 1st of the month'],
    ['0 8,12,18 * * *', 'every day at 08:00, 12:00, 18:00'],
    ['0 0 1 JAN *', 'at 00:00 on the 1st of the month in January'],
    ['@daily', 'every day at 00:00'],
    ['@hourly', 'every hour, on the hour'],
    ['@every 1h30m', 'every 1 hour 30 minutes'],
    ['@every 1m', 'every minute'],
    ['10s', 'every 10 seconds'],
    ['1-10/2 * * * * *', 'second every other from 1–10'],
  ])('%s -> %s', (schedule, words) => {
    expect(describeSchedule(schedule)).toBe(words);
  });

  it('gives back what it cannot read rather than a wrong sentence', () => {
    expect(describeSchedule('0 0 L * *')).toBe('0 0 L * *');
    expect(describeSchedule('@every soon')).toBe('@every soon');
  });
});
