import { describe, expect, it } from 'vitest';
import { parseSchedule } from '../src/schedule/schedule.js';
import { planFires, type PlannedJob } from '../src/schedule/firePlan.js';
import { decideOverlap } from '../src/schedule/overlap.js';

const OPTS = { graceMs: 5_000, runAllMax: 3, maxTicks: 1000 };
const idle = { running: [], queued: [] };

function job(schedule: string, over: Partial<PlannedJob> = {}): PlannedJob {
  const parsed = parseSchedule(schedule);
  if (!parsed.ok) throw new Error(parsed.error);
  return {
    schedule: parsed.value, timezone: 'UTC', anchor: new Date('2027-01-01T00:00:00Z'), runOnce: false, paused: false,
    cursor: new Date('2027-01-01T00:00:10Z'), concurrency: 'skip', misfire: 'run_once', ...over,
  };
}
const at = (iso: string) => new Date(iso).getTime();
const outcomes = (p: ReturnType<typeof planFires>) => p.ticks.map((t) => `${t.fireTime.toISOString().slice(11, 19)} ${t.outcome}${t.catchUp ? '*' : ''}`);

describe('the overlap policy', () => {
  it.each([
    ['skip', idle, { run: true, cancel: [] }],
    ['skip', { running: ['r'], queued: [] }, { run: false }],
    ['queue', { running: ['r'], queued: [] }, { run: true, cancel: [] }],
    ['queue', { running: ['r'], queued: ['q'] }, { run: false }],
    ['replace', { running: ['r'], queued: ['q'] }, { run: true, cancel: ['r', 'q'] }],
  ] as const)('%s with %o decides %o', (policy, active, expected) => {
    expect(decideOverlap(policy, { running: [...active.running], queued: [...active.queued] })).toEqual(expected);
  });
});

describe('planning the fires of one pass', () => {
  it('fires the one due tick on time and moves the cursor to the next', () => {
    const p = planFires(job('*/1 * * * * *'), at('2027-01-01T00:00:10.004Z'), idle, OPTS);
    expect(outcomes(p)).toEqual(['00:00:10 FIRED']);
    expect(p.next!.toISOString()).toBe('2027-01-01T00:00:11.000Z');
  });

  it('skips a fire while a run is active (skip), records PAUSED while paused', () => {
    expect(outcomes(planFires(job('*/1 * * * * *'), at('2027-01-01T00:00:10Z'), { running: ['r'], queued: [] }, OPTS))).toEqual(['00:00:10 SKIPPED_OVERLAP']);
    expect(outcomes(planFires(job('*/1 * * * * *', { paused: true }), at('2027-01-01T00:00:12Z'), idle, OPTS))).toEqual([
      '00:00:10 PAUSED', '00:00:11 PAUSED', '00:00:12 PAUSED',
    ]);
  });

  it('treats fire times later than the grace by the misfire policy', () => {
    const now = at('2027-01-01T00:00:20Z'); // 10..14 are more than 5 s late, 15..20 are not
    const skip = planFires(job('*/1 * * * * *', { misfire: 'skip' }), now, idle, OPTS);
    expect(skip.ticks.filter((t) => t.outcome === 'MISSED')).toHaveLength(5);
    expect(skip.ticks[5]!.outcome).toBe('FIRED');
    const once = planFires(job('*/1 * * * * *', { misfire: 'run_once' }), now, idle, OPTS);
    expect(outcomes(once).slice(0, 6)).toEqual([
      '00:00:10 MISSED', '00:00:11 MISSED', '00:00:12 MISSED', '00:00:13 MISSED', '00:00:14 FIRED*', '00:00:15 SKIPPED_OVERLAP',
    ]);
    const all = planFires(job('*/1 * * * * *', { misfire: 'run_all' }), now, idle, OPTS);
    expect(outcomes(all).slice(0, 5)).toEqual(['00:00:10 FIRED*', '00:00:11 FIRED*', '00:00:12 FIRED*', '00:00:13 MISSED', '00:00:14 MISSED']);
  });

  it('replaces within a pass: only the newest fire runs, and active runs are cancelled', () => {
    const p = planFires(job('*/1 * * * * *', { concurrency: 'replace' }), at('2027-01-01T00:00:12Z'), { running: ['r'], queued: [] }, OPTS);
    expect(outcomes(p)).toEqual(['00:00:10 SKIPPED_OVERLAP', '00:00:11 SKIPPED_OVERLAP', '00:00:12 FIRED']);
    expect(p.cancel).toEqual(['r']);
  });

  it('gives a run_once job one tick, then no cursor', () => {
    const p = planFires(job('*/1 * * * * *', { runOnce: true }), at('2027-01-01T00:00:15Z'), idle, OPTS);
    expect(p.ticks).toHaveLength(1);
    expect(p.next).toBeNull();
  });

  it('walks fire times across both DST changes of 2027 in America/New_York', () => {
    const tz = 'America/New_York';
    const spring = planFires(job('30 2 * * *', { timezone: tz, cursor: new Date('2027-03-13T07:30:00Z') }), at('2027-03-15T07:30:00Z'), idle, { ...OPTS, graceMs: 1e12 });
    // 02:30 does not exist on Mar 14: it fires once, at the next valid instant (03:00 EDT).
    expect(spring.ticks.map((t) => t.fireTime.toISOString())).toEqual(['2027-03-13T07:30:00.000Z', '2027-03-14T07:00:00.000Z', '2027-03-15T06:30:00.000Z']);
    const fall = planFires(job('30 1 * * *', { timezone: tz, cursor: new Date('2027-11-06T05:30:00Z') }), at('2027-11-08T06:30:00Z'), idle, { ...OPTS, graceMs: 1e12 });
    // 01:30 happens twice on Nov 7: it fires once.
    expect(fall.ticks.map((t) => t.fireTime.toISOString())).toEqual(['2027-11-06T05:30:00.000Z', '2027-11-07T05:30:00.000Z', '2027-11-08T06:30:00.000Z']);
  });
});
