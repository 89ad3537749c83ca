import type pg from 'pg';
import { toExecutionPlan } from '../../src/jobfile/compile.js';
import type { JobSpec } from '../../src/jobfile/types.js';

/** A job file of `count` jobs `Job0000`..., each on a schedule that fires once a year. */
export function manyJobs(count: number, from = 0): string {
  const jobs = Array.from({ length: count }, (_, i) => `  - name: Job${String(from + i).padStart(4, '0')}\n    schedule: "0 3 1 1 *"\n    steps: [{run: "true"}]\n`);
  return `jobs:\n${jobs.join('')}`;
}

/**
 * `runs` finished executions for every job of `owner`, written by SQL as a real run leaves them
 * (every seventh failed), and a ledger of FIRED ticks with a MISSED one newest on every fifth job:
 * a board of a team's jobs with a past, not of empty rows. Row triggers are off
 * (`session_replication_role = replica`) so that no NOTIFY is sent per row.
 */
export async function seedRuns(pool: pg.Pool, owner: string, runs: number, definition: JobSpec, image: string): Promise<void> {
  const plan = toExecutionPlan(definition, { image });
  const client = await pool.connect();
  try {
    await client.query(`set session_replication_role = replica`);
    await client.query('begin');
    await client.query(
      `insert into executions (id, job_id, owner, number, status, trigger, attempt, priority, plan, scheduled_for,
                               queued_at, started_at, finished_at, exit_code, error, log_key, last_seq, worker_id,
                               artifacts, retry_of, retry_number, lease_expires_at, created_at)
       select gen_random_uuid(), j.id, j.owner, n, case when n % 7 = 0 then 'FAILED' else 'SUCCEEDED' end, 'SCHEDULE', 1,
              j.priority, $3::jsonb, t, t, t + interval '40 ms', t + (1000 + (n * 137) % 9000) * interval '1 ms',
              case when n % 7 = 0 then 1 else 0 end, null, null, 0, 'bench-worker', '[]', null, 0, null, t
         from jobs j, generate_series(1, $2::int) as n, lateral (select now() - (($2::int - n + 1) * interval '1 hour') as t) as at
        where j.owner = $1`,
      [owner, runs, JSON.stringify(plan)],
    );
    await client.query(
      `insert into ticks (job_id, fire_time, outcome, catch_up, execution_id, recorded_at)
       select j.id, now() - interval '1 day' * g, case when g = 1 and (hashtext(j.id::text) % 5) = 0 then 'MISSED' else 'FIRED' end, false, null, now()
         from jobs j, generate_series(1, 3) as g where j.owner = $1`,
      [owner],
    );
    await client.query(`update jobs set execution_count = $2 where owner = $1`, [owner, runs]);
    await client.query('commit');
    await client.query(`reset session_replication_role`);
  } finally {
    client.release();
  }
  await pool.query(`vacuum (analyze) executions, ticks, jobs`);
}
