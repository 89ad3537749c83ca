import { describe, expect, it } from 'vitest';
import { compileJobFile } from '../src/jobfile/compile.js';
import { MAX_FIRE_GAP_YEARS, nextFireTimes, parseSchedule } from '../src/schedule/schedule.js';

function refusal(text: string): string {
  const result = parseSchedule(text);
  if (result.ok) throw new Error(`expected "${text}" to be refused`);
  return result.error;
}

function timed<T>(fn: () => T): { value: T; ms: number } {
  const start = performance.now();
  const value = fn();
  return { value, ms: performance.now() - start };
}

describe('cron schedules that fire too rarely', () => {
  it('refuses the fifth Thursday of February (every 28 years), naming the limit and two of its days', () => {
    const { value, ms } = timed(() => refusal('0 0 0 * 2 4#5'));
    expect(value).toBe(
      `"0 0 0 * 2 4#5" fires too rarely: its days can be more than ${MAX_FIRE_GAP_YEARS} years apart (2024-02-29, then 2052-02-29); ` +
        `a schedule must fire at least once every ${MAX_FIRE_GAP_YEARS} years`,
    );
    // Generous: about 30 years of cron-parser's day steps, on a busy 2-core machine.
    expect(ms).toBeLessThan(1000);
  });

  it('answers 1,000 rare schedules that differ only in their time of day in bounded time', () => {
    const texts = Array.from({ length: 1000 }, (_, i) => `${i % 60} ${(i / 60) | 0} 0 * 2 3#5`);
    const { value, ms } = timed(() => texts.map((t) => parseSchedule(t)));
    expect(value.every((r) => !r.ok && /fires too rarely/.test(r.error))).toBe(true);
    // One verdict per set of day fields: the 1,000 cost about one walk, not 1,000 (5 s before).
    expect(ms).toBeLessThan(1500);
  });

  it('still says "never fires" for days that do not exist', () => {
    expect(refusal('0 0 30 2 *')).toBe('"0 0 30 2 *" never fires: no date matches it');
    expect(refusal('0 0 0 30,31 2 *')).toBe('"0 0 0 30,31 2 *" never fires: no date matches it');
  });

  it.each([
    ['Feb 29 (every 4 years)', '0 0 29 2 *'],
    ['the fifth Monday of any month', '0 0 * * 1#5'],
    ['the last Friday of February', '0 0 * 2 5L'],
    ['the 13th when it is a Friday, or any Friday (cron ORs the two day fields)', '0 0 13 * 5'],
    ['every second', '* * * * * *'],
  ])('accepts %s', (_, text) => {
    expect(parseSchedule(text).ok).toBe(true);
  });

  it('gives 100 fire times of the rarest accepted schedule in bounded time', () => {
    const parsed = parseSchedule('0 0 29 2 *');
    if (!parsed.ok) throw new Error(parsed.error);
    const { value, ms } = timed(() => nextFireTimes(parsed.value, { after: new Date('2026-12-06T00:00:00Z'), count: 100 }));
    expect(value).toHaveLength(100);
    expect(value[0]!.toISOString()).toBe('2028-02-29T00:00:00.000Z');
    expect(ms).toBeLessThan(5000);
  });

  it('reports a rare schedule in a job file at the schedule value, like any bad schedule', () => {
    const result = compileJobFile('jobs:\n  - name: rare\n    schedule: "7 3 0 * 2 4#5"\n    steps: [{run: "true"}]\n');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.diagnostics).toEqual([
      expect.objectContaining({ line: 3, column: 15, path: 'jobs[0].schedule', severity: 'error', message: expect.stringMatching(/fires too rarely/) }),
    ]);
  });
});
