import { backoffMs } from './backoff.js';
import type { DueArchive } from '../logs/archiveBatch.js';
import type { Sql } from './sql.js';

/**
 * The log archive queue lives on the executions rows (docs/design.md#archives): a finished
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

/** A finished execution waiting for its archive; defined beside the archiver, which logs/ keeps free of executions/. */
export type { DueArchive };

/**
 * Takes up to `limit` due archives, oldest first, locking their rows in the caller's transaction
 * (skip locked: concurrent archivers take different rows; an archiver that dies lets go of them).
 */
export async function takeDueArchives(sql: Sql, limit: number): Promise<DueArchive[]> {
  return sql<DueArchive>(
    `select id, archive_failures as failures, last_seq as "lastSeq" from executions
      where archive_due_at <= now() order by archive_due_at limit $1 for update skip locked`,
    [limit],
  );
}

/** What became of archives taken: done (where), failed (due again after the backoff), or reserved. */
export interface ArchiveRecords {
  done: ReadonlyArray<{ id: string; key: string }>;
  failed: readonly DueArchive[];
  /** Taken to be archived outside the transaction (big logs): nobody else takes them for a while. */
  reserved?: readonly DueArchive[];
}

/**
 * Records archives in one statement: a done log's key (its lines may be pruned from then on), a
 * failed one due again after its backoff (no limit on tries), a reserved one due again only if its
 * archiver never records it.
 */
export async function recordArchives(sql: Sql, r: ArchiveRecords): Promise<void> {
  const rows = [
    ...r.done.map((d) => ({ id: d.id, key: d.key, failures: null as number | null, delay: null as number | null })),
    ...r.failed.map((f) => ({ id: f.id, key: null, failures: f.failures + 1, delay: archiveRetryDelayMs(f.failures + 1) })),
    ...(r.reserved ?? []).map((b) => ({ id: b.id, key: null, failures: null, delay: ARCHIVE_RESERVE_MS })),
  ];
  if (rows.length === 0) return;
  await sql(
    `update executions e
        set log_key = coalesce(d.key, e.log_key),
            archive_failures = coalesce(d.failures, e.archive_failures),
            archive_due_at = case when d.key is null then now() + d.delay * interval '1 millisecond' end
       from unnest($1::uuid[], $2::text[], $3::int[], $4::int[]) as d(id, key, failures, delay) where e.id = d.id`,
    [rows.map((x) => x.id), rows.map((x) => x.key), rows.map((x) => x.failures), rows.map((x) => x.delay)],
  );
}
