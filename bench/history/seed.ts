import type pg from 'pg';
import { toExecutionPlan } from '../../src/jobfile/compile.js';
import type { JobSpec } from '../../src/jobfile/types.js';

/**
 * A long history written straight into Kiln's tables: `count` finished executions of one job,
 * one per minute going back from now (number 1 the oldest), each with one step, every column the
 * history page and its queries read filled as a real run leaves it.
 *
 * Written with `session_replication_role = replica`, so that no row trigger fires: the events
 * triggers would queue one NOTIFY per row (a million payloads) and the attempts trigger does not
 * fire on inserts anyway. Foreign keys are not checked either; every row points at the job.
 */
export interface SeededHistory {
  /** created_at of execution number n is `base + n minutes`. */
  base: Date;
  count: number;
}

/** Rows per insert statement: small enough to report progress, large enough to be quick. */
const BATCH = 100_000;

export async function seedHistory(
  pool: pg.Pool,
  job: { id: string; owner: string; priority: number; definition: JobSpec },
  count: number,
  defaultImage: string,
  progress: (done: number) => void,
): Promise<SeededHistory> {
  const plan = toExecutionPlan(job.definition, { image: defaultImage });
  const stepName = plan.steps[0]!.name;
  const base = new Date(Math.floor(Date.now() / 60_000) * 60_000 - (count + 1) * 60_000);
  const client = await pool.connect();
  try {
    await client.query(`set session_replication_role = replica`);
    for (let from = 1; from <= count; from += BATCH) {
      const to = Math.min(count, from + BATCH - 1);
      await client.query('begin');
      // Every tenth run failed (exit 1); durations vary from 1 s to 2 s; the step mirrors its run.
      await client.query(
        `with e as (
           insert into executions (id, job_id, owner, number, status, trigger, attempt, priority, plan, scheduled_for,
                                   queued_at, started_at, finished_at, exit_code, error, log_key, last_seq, worker_id,
                                   artifacts, retry_of, retry_number, lease_expires_at, created_at)
           select gen_random_uuid(), $1, $2, n,
                  case when n % 10 = 0 then 'FAILED' else 'SUCCEEDED' end, 'SCHEDULE', 1, $3, $4::jsonb, t,
                  t, t + interval '40 ms', t + interval '40 ms' + (1000 + n % 1000) * interval '1 ms',
                  case when n % 10 = 0 then 1 else 0 end,
                  case when n % 10 = 0 then 'step "' || $5 || '" exited with 1' end,
                  null, 12, 'bench-worker', '[]', null, 0, null, t
             from generate_series($6::int, $7::int) as n,
                  lateral (select $8::timestamptz + n * interval '1 minute' as t) as at
           returning id, status, exit_code, started_at, finished_at
         )
         insert into execution_steps (id, execution_id, index, name, status, exit_code, started_at, finished_at)
         select gen_random_uuid(), id, 0, $5, status, exit_code, started_at + interval '5 ms', finished_at - interval '5 ms' from e`,
        [job.id, job.owner, job.priority, JSON.stringify(plan), stepName, from, to, base],
      );
      await client.query('commit');
      progress(to);
    }
    await client.query(`update jobs set execution_count = $2 where id = $1`, [job.id, count]);
    await client.query(`reset session_replication_role`);
  } finally {
    client.release();
  }
  // Visibility map and statistics as a long-lived table has them (index-only scans, real row counts).
  await pool.query(`vacuum (analyze) executions, execution_steps, jobs`);
  return { base, count };
}

/** The (created_at, id) keys of executions `numbers` of the job (by the unique (job, number) index). */
export async function keysOf(pool: pg.Pool, jobId: string, numbers: number[]): Promise<Map<number, { createdAt: Date; id: string }>> {
  const { rows } = await pool.query<{ number: number; created_at: Date; id: string }>(
    `select number, created_at, id from executions where job_id = $1 and number = any($2::int[])`,
    [jobId, numbers],
  );
  return new Map(rows.map((r) => [r.number, { createdAt: r.created_at, id: r.id }]));
}
