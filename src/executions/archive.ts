import type pg from 'pg';
import { TASKS } from './queue.js';
import type { Sql } from './sql.js';

/** Queues archiving of a finished execution's log; graphile-worker retries it with backoff. */
export async function enqueueArchive(sql: Sql, executionId: string): Promise<void> {
  await sql(
    `select graphile_worker.add_job($1, json_build_object('executionId', $2::text), job_key => 'archive:' || $2, max_attempts => 25)`,
    [TASKS.archiveLog, executionId],
  );
}

/** Records where a finished execution's log was archived (its lines may be pruned from then on). */
export async function markArchived(pool: pg.Pool, executionId: string, key: string): Promise<void> {
  await pool.query(`update executions set log_key = $2 where id = $1`, [executionId, key]);
}
