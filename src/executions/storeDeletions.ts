import type pg from 'pg';
import { TASKS } from './queue.js';
import type { Sql } from './sql.js';

/**
 * After the first sweep of a prefix, a second one this much later: a run cancelled by the delete
 * may still have been uploading an artifact when the first sweep ran.
 */
export const SECOND_SWEEP_DELAY_SEC = 600;

/** One store prefix (everything of one execution) waiting to be removed from the store. */
export interface StoreDeletion {
  prefix: string;
  sweeps: number;
}

/** Everything one execution has in the store (archived log, artifacts) is under this prefix. */
export function executionPrefix(executionId: string): string {
  return `executions/${executionId}/`;
}

/**
 * Asks for the store objects of every execution of `jobId` to be removed: call it in the
 * transaction that deletes the job, before the delete. The request commits with the delete or not
 * at all, so a crash between the database and the store loses nothing and leaves nothing
 * (docs/design.md#quotas). The housekeeping runner is woken to do it now.
 */
export async function requestStoreDeletion(sql: Sql, jobId: string): Promise<void> {
  await sql(
    `insert into store_deletions (prefix) select 'executions/' || id || '/' from executions where job_id = $1
       on conflict (prefix) do update set due_at = now(), sweeps = 0`,
    [jobId],
  );
  await sql(`select graphile_worker.add_job($1, '{}'::json, job_key := $1, max_attempts := 3)`, [TASKS.storeDeletions]);
}

/**
 * Asks for store prefixes to be removed (evicted caches, docs/design.md#build-caches), in the
 * caller's transaction, and wakes the housekeeping runner.
 */
export async function requestPrefixDeletion(sql: Sql, prefixes: readonly string[]): Promise<void> {
  if (prefixes.length === 0) return;
  await sql(`insert into store_deletions (prefix) select unnest($1::text[]) on conflict (prefix) do update set due_at = now(), sweeps = 0`, [prefixes]);
  await sql(`select graphile_worker.add_job($1, '{}'::json, job_key := $1, max_attempts := 3)`, [TASKS.storeDeletions]);
}

/** Up to `limit` prefixes due for a sweep, oldest first. */
export async function dueStoreDeletions(pool: pg.Pool, limit: number): Promise<StoreDeletion[]> {
  const { rows } = await pool.query<StoreDeletion>(
    `select prefix, sweeps from store_deletions where due_at <= now() order by due_at limit $1`,
    [limit],
  );
  return rows;
}

/** A prefix was swept: after the first sweep it is due once more, after the second it is done. */
export async function storeDeletionSwept(pool: pg.Pool, deletion: StoreDeletion): Promise<void> {
  if (deletion.sweeps >= 1) {
    await pool.query(`delete from store_deletions where prefix = $1 and sweeps = $2`, [deletion.prefix, deletion.sweeps]);
  } else {
    await pool.query(
      `update store_deletions set sweeps = 1, due_at = now() + make_interval(secs => $2) where prefix = $1 and sweeps = 0`,
      [deletion.prefix, SECOND_SWEEP_DELAY_SEC],
    );
  }
}

/** A sweep failed (the store is down): the prefix is tried again later. */
export async function storeDeletionFailed(pool: pg.Pool, prefix: string, retrySec: number): Promise<void> {
  await pool.query(`update store_deletions set due_at = now() + make_interval(secs => $2) where prefix = $1`, [prefix, retrySec]);
}
