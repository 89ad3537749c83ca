import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fireAhead, fireDue } from '../src/scheduler/fireDue.js';
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

  it('prepared ahead of an instant, shows nothing before it, and leaves a job with an active run to the pass at the instant', async () => {
    const token = await k.token('bob');
    // Both due once, at a whole second a moment from now (6-field cron on that second, UTC).
    const instant = Math.ceil((Date.now() + 1500) / 1000) * 1000;
    const d = new Date(instant);
    const cron = `${d.getUTCSeconds()} ${d.getUTCMinutes()} ${d.getUTCHours()} ${d.getUTCDate()} ${d.getUTCMonth() + 1} *`;
    const spec = (name: string) => `  - name: ${name}\n    schedule: "${cron}"\n    concurrency: skip\n    steps: [{run: "true"}]\n`;
    const [idle, busy] = await submit(k.gql, token, `jobs:\n${spec('Idle')}${spec('Busy')}`);
    const { pool } = k.kiln.deps;
    // Busy has a run queued (a manual trigger).
    await k.gql(`mutation($id: ID!) { triggerJob(id: $id) { id } }`, { id: busy }, token);
    const { rows: cursors } = await pool.query<{ next: Date }>(`select next_run_at as next from jobs where id = any($1::uuid[])`, [[idle, busy]]);
    expect(cursors.map((c) => c.next.getTime())).toEqual([instant, instant]);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, instant - 600 - Date.now())));

    const pass = fireAhead(pool, opts, instant);
    // While the pass waits for its instant: no tick, no run; a trigger of the taken job waits on
    // its row, then finds the prepared run queued (`concurrency: skip` refuses a second).
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await ticksOf(pool, idle!)).toEqual([]);
    const trigger = k.gql(`mutation($id: ID!) { triggerJob(id: $id) { id } }`, { id: idle }, token);
    const done = await pass;
    const answered = await trigger;
    const triggeredAt = Date.now();
    expect(done.jobs).toBe(1);
    expect(done.writeMs).toBeGreaterThanOrEqual(0);
    expect(answered.errors?.[0]?.message).toMatch(/already has a queued execution/);
    expect(triggeredAt).toBeGreaterThanOrEqual(instant);

    const [tick] = await ticksOf(pool, idle!);
    expect(tick).toMatchObject({ outcome: 'FIRED' });
    const { rows } = await pool.query<{ queued_at: Date; run_at: Date; scheduled_for: Date; recorded_at: Date }>(
      `select e.queued_at, e.run_at, e.scheduled_for, t.recorded_at from executions e join ticks t on t.execution_id = e.id where e.job_id = $1`,
      [idle],
    );
    // Never earlier than the fire time, though written before it.
    expect(rows[0]!.scheduled_for.getTime()).toBe(instant);
    for (const t of [rows[0]!.queued_at, rows[0]!.run_at, rows[0]!.recorded_at]) expect(t.getTime()).toBeGreaterThanOrEqual(instant);
    // The job with a queued run was not taken ahead: its fire is decided by the pass at the instant.
    expect(await ticksOf(pool, busy!)).toEqual([]);
    await fireDue(pool, opts, Date.now());
    expect((await ticksOf(pool, busy!)).map((t) => t.outcome)).toEqual(['SKIPPED_OVERLAP']);
  });
});
