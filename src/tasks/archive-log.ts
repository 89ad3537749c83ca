import type { Task } from 'graphile-worker';
import type pg from 'pg';
import { archiveLogToStore } from '../logs/archive.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';

/**
 * graphile-worker task: copies a finished execution's log to the store and records where.
 * Throws while the store is unreachable, so graphile-worker retries it with exponential
 * backoff; the lines stay in Postgres meanwhile.
 */
export function archiveLogTask(pool: pg.Pool, store: ArtifactStore): Task {
  return async (payload) => {
    const { executionId } = payload as { executionId: string };
    const { rows } = await pool.query(`select 1 from executions where id = $1`, [executionId]);
    if (rows.length === 0) return; // deleted meanwhile: nothing to keep
    const key = await archiveLogToStore(pool, store, executionId);
    await pool.query(`update executions set log_key = $2 where id = $1`, [executionId, key]);
  };
}
