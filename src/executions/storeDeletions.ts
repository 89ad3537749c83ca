import type pg from 'pg';
import { TASKS } from './queue.js';
import type { Sql } from '../util/sql.js';

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
  // The packs holding their small logs are rewritten without them. `for update` waits for an
  // archiver that holds some of these rows, so a pack it is recording is listed too.
  await sql(
    `insert into log_pack_compactions (key)
       select distinct log_key from (select log_key from executions where job_id = $1 and log_offset is not null for update) as packed
       on conflict (key) do update set due_at = now()`,
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

/** How long a pack being written may take to be recorded before it counts as abandoned. */
const PACK_RECORD_WITHIN_SEC = 3600;

/**
 * Before a new pack is written: lists it for a compaction an hour from now, in a statement of its
 * own, so that a pack whose recording transaction never commits (a crash, a lost connection) is
 * removed from the store then, whatever logs it holds. Recording it cancels that (packRecorded).
 */
export async function expectPack(pool: pg.Pool, key: string): Promise<void> {
  await pool.query(`insert into log_pack_compactions (key, due_at) values ($1, now() + make_interval(secs => $2))`, [key, PACK_RECORD_WITHIN_SEC]);
}

/** The packs `keys` are recorded on their executions, in the caller's transaction: no compaction is due. */
export async function packRecorded(sql: Sql, keys: readonly string[]): Promise<void> {
  if (keys.length > 0) await sql(`delete from log_pack_compactions where key = any($1::text[])`, [keys]);
}

/** Up to `limit` packs due for a compaction (docs/design.md#archives), oldest first. */
export async function duePackCompactions(pool: pg.Pool, limit: number): Promise<string[]> {
  const { rows } = await pool.query<{ key: string }>(`select key from log_pack_compactions where due_at <= now() order by due_at limit $1`, [limit]);
  return rows.map((r) => r.key);
}

/** Takes the compaction of `key` in the caller's transaction; false when another process has it or it is done. */
export async function takePackCompaction(sql: Sql, key: string): Promise<boolean> {
  return (await sql(`select 1 from log_pack_compactions where key = $1 and due_at <= now() for update skip locked`, [key])).length > 0;
}

/** The compaction of `key` is over: the old pack is gone from the store. */
export async function packCompacted(pool: pg.Pool, key: string): Promise<void> {
  await pool.query(`delete from log_pack_compactions where key = $1`, [key]);
}

/** A compaction failed (the store is down): it is tried again later. */
export async function packCompactionFailed(pool: pg.Pool, key: string, retrySec: number): Promise<void> {
  await pool.query(`update log_pack_compactions set due_at = now() + make_interval(secs => $2) where key = $1`, [key, retrySec]);
}

/** A sweep failed (the store is down): the prefix is tried again later. */
export async function storeDeletionFailed(pool: pg.Pool, prefix: string, retrySec: number): Promise<void> {
  await pool.query(`update store_deletions set due_at = now() + make_interval(secs => $2) where prefix = $1`, [prefix, retrySec]);
}
