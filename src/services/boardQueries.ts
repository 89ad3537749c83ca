import type pg from 'pg';
import type { Tick } from '../entities/index.js';
import { ValidationError } from '../errors.js';
import { executionView, LIST_COLUMNS, type ExecutionRecord, type ExecutionView } from './executionQueries.js';

/** The longest strip of recent runs one job may ask for (`Job.recentRuns(count)`). */
export const MAX_RECENT_RUNS = 50;

/**
 * The newest `count` executions of each job, newest first, in one statement for all of them:
 * one probe of the (job_id, created_at desc, id desc) index per job. A board of 100 jobs is one
 * round trip, not 100. Callers pass jobs already read for their owner.
 */
export async function recentRunsOfJobs(pool: pg.Pool, jobIds: readonly string[], count: number): Promise<Map<string, ExecutionView[]>> {
  if (!Number.isInteger(count) || count < 1 || count > MAX_RECENT_RUNS) throw new ValidationError(`count must be between 1 and ${MAX_RECENT_RUNS}`);
  const runs = new Map<string, ExecutionView[]>(jobIds.map((id) => [id, []]));
  if (jobIds.length === 0) return runs;
  const { rows } = await pool.query<ExecutionRecord>(
    `select ${LIST_COLUMNS}
       from unnest($1::uuid[]) as j(id)
       cross join lateral (select * from executions x where x.job_id = j.id order by x.created_at desc, x.id desc limit $2) e
      order by e.job_id, e.created_at desc, e.id desc`,
    [[...runs.keys()], count],
  );
  for (const r of rows) runs.get(r.job_id)?.push(executionView(r));
  return runs;
}

/** Each job's newest tick of the ledger (null for none), in one statement: one index probe per job. */
export async function lastTicksOfJobs(pool: pg.Pool, jobIds: readonly string[]): Promise<Map<string, Tick | null>> {
  const ticks = new Map<string, Tick | null>(jobIds.map((id) => [id, null]));
  if (jobIds.length === 0) return ticks;
  const { rows } = await pool.query<{ job_id: string; fire_time: Date; outcome: Tick['outcome']; catch_up: boolean; execution_id: string | null; recorded_at: Date }>(
    `select t.* from unnest($1::uuid[]) as j(id)
       cross join lateral (select * from ticks x where x.job_id = j.id order by x.fire_time desc limit 1) t`,
    [[...ticks.keys()]],
  );
  for (const r of rows) {
    ticks.set(r.job_id, { jobId: r.job_id, fireTime: r.fire_time, outcome: r.outcome, catchUp: r.catch_up, executionId: r.execution_id, recordedAt: r.recorded_at });
  }
  return ticks;
}
