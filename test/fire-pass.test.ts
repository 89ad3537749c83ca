import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fireDue } from '../src/scheduler/fireDue.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { submit, ticksOf } from './helpers/ledger.js';

/**
 * One pass of the scheduler records its plan in one statement (src/scheduler/fireDue.ts): ticks
 * with their executions, steps, numbers and cursors. Without a worker (no leader fires meanwhile),
 * fireDue is driven by hand over catch-ups bigger than one statement's runs.
 */
describe('a pass of the scheduler', () => {
  let k: TestKiln;
  const opts = { defaultImage: 'busybox', graceMs: 0, runAllMax: 1000, maxTicks: 1000, batchSize: 500 };

  beforeAll(async () => {
    k = await startTestKiln({ worker: false });
  });
  afterAll(async () => {
    await k?.stop();
  });

  it('records catch-ups beyond one statement over several passes, each fire time once, numbered in order', async () => {
    const token = await k.token('alice');
    const spec = (name: string) => `  - name: ${name}\n    schedule: "*/1 * * * * *"\n    misfire: run_all\n    steps: [{run: "true"}, {run: "true"}]\n`;
    const [a, b] = await submit(k.gql, token, `jobs:\n${spec('A')}${spec('B')}`);
    const { pool } = k.kiln.deps;
    const second0 = Math.floor(Date.now() / 1000) * 1000;
    // 400 missed seconds each (all late: the pass runs half a second after the last one): 800
    // catch-up runs, more than one statement takes (500).
    await pool.query(`update jobs set next_run_at = to_timestamp($1 / 1000.0) where id = any($2::uuid[])`, [second0 - 400_000, [a, b]]);
    const now = second0 - 500;
    const first = await fireDue(pool, opts, now);
    expect(first).toEqual({ jobs: 1, more: true });
    const second = await fireDue(pool, opts, now);
    expect(second).toEqual({ jobs: 1, more: false });
    expect(await fireDue(pool, opts, now)).toEqual({ jobs: 0, more: false });
    for (const job of [a!, b!]) {
      const ticks = await ticksOf(pool, job);
      expect(ticks).toHaveLength(400);
      expect(ticks.every((t) => t.outcome === 'FIRED' && t.catch_up && t.execution_id !== null)).toBe(true);
      const { rows } = await pool.query<{ number: number; scheduled_for: Date; steps: number; count: number }>(
        `select e.number, e.scheduled_for, (select count(*)::int from execution_steps s where s.execution_id = e.id) as steps,
                (select execution_count from jobs where id = e.job_id) as count
           from executions e where e.job_id = $1 order by e.scheduled_for`,
        [job],
      );
      expect(rows.map((r) => r.number)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
      expect(rows.every((r) => r.steps === 2 && r.count === 400)).toBe(true);
      expect(rows.map((r) => r.scheduled_for.getTime())).toEqual(ticks.map((t) => new Date(t.fire_time).getTime()));
    }
    const { rows: cursors } = await pool.query<{ next: Date }>(`select next_run_at as next from jobs where id = any($1::uuid[])`, [[a, b]]);
    expect(cursors.every((c) => c.next.getTime() === second0)).toBe(true);
  });
});
