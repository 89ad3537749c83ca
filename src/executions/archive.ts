import type pg from 'pg';
import { backoffMs } from './backoff.js';

/**
 * The log archive queue lives on the executions rows (docs/design.md, "Archives"): a finished
 * execution gets `archive_due_at` in the very statement that records its outcome, so archiving
 * costs the finish nothing. Archivers take due rows in batches, and record each result; while
 * the store fails an archive is retried with the capped backoff, without limit (the lines stay in
 * Postgres meanwhile).
 */

/** Longest wait between two tries of an archive while the store fails. */
export const ARCHIVE_RETRY_MAX_MS = 15_000;
/** How long a taken archive is reserved for its archiver; past it (the archiver died) anyone retakes it. */
const ARCHIVE_RESERVE_MS = 5 * 60_000;

/** Wait before the next try after `failures` failed ones: 1 s, 2 s, 4 s ... capped at 15 s. */
export function archiveRetryDelayMs(failures: number): number {
  return backoffMs(1000, failures, ARCHIVE_RETRY_MAX_MS);
}

/** SQL expression: the execution is due for archiving now (used by the finish and hand-back). */
export const ARCHIVE_NOW = `archive_due_at = now()`;

/** A finished execution waiting for its archive. */
export interface DueArchive {
  id: string;
  failures: number;
  /** Highest stored log seq: how big the log is. */
  lastSeq: number;
}

/**
 * Takes up to `limit` due archives, oldest first, reserving them for a while so that no other
 * archiver takes them meanwhile (skip locked: concurrent archivers take different rows).
 */
export async function takeDueArchives(pool: pg.Pool, limit: number): Promise<DueArchive[]> {
  const { rows } = await pool.query<DueArchive>(
    `update executions e set archive_due_at = now() + $2 * interval '1 millisecond'
       from (select id from executions where archive_due_at <= now() order by archive_due_at limit $1 for update skip locked) d
      where e.id = d.id
      returning e.id, e.archive_failures as failures, e.last_seq as "lastSeq"`,
    [limit, ARCHIVE_RESERVE_MS],
  );
  return rows;
}

/** Records archived logs (their lines may be pruned from then on), in one statement. */
export async function markArchived(pool: pg.Pool, done: ReadonlyArray<{ id: string; key: string }>): Promise<void> {
  if (done.length === 0) return;
  await pool.query(
    `update executions e set log_key = d.key, archive_due_at = null
       from unnest($1::uuid[], $2::text[]) as d(id, key) where e.id = d.id`,
    [done.map((d) => d.id), done.map((d) => d.key)],
  );
}

/** Records failed tries: each archive is due again after its backoff. */
export async function markArchiveFailed(pool: pg.Pool, failed: readonly DueArchive[]): Promise<void> {
  if (failed.length === 0) return;
  await pool.query(
    `update executions e set archive_failures = d.failures, archive_due_at = now() + d.delay * interval '1 millisecond'
       from unnest($1::uuid[], $2::int[], $3::int[]) as d(id, failures, delay) where e.id = d.id`,
    [failed.map((f) => f.id), failed.map((f) => f.failures + 1), failed.map((f) => archiveRetryDelayMs(f.failures + 1))],
  );
}
