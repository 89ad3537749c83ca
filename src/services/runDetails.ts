import type pg from 'pg';

/** Where an execution runs: fields of its row that lists do not read (ExecutionView leaves out the plan). */
export interface RunDetails {
  worker: string | null;
  image: string;
}

/** The worker and image of one execution, read by id; callers scope the id to its owner. */
export async function runDetailsOf(pool: pg.Pool, executionId: string): Promise<RunDetails> {
  const { rows } = await pool.query<RunDetails>(`select worker_id as worker, plan->>'image' as image from executions where id = $1`, [executionId]);
  if (rows[0] === undefined) throw new Error(`execution ${executionId} not found`);
  return rows[0];
}
