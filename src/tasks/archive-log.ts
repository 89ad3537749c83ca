import type pg from 'pg';
import { markArchived, markArchiveFailed, takeDueArchives } from '../executions/archive.js';
import { archiveBatch } from '../logs/archiveBatch.js';
import type { Log } from '../ops/log.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';

export { ARCHIVE_RETRY_MAX_MS, archiveRetryDelayMs } from '../executions/archive.js';

/** Archives taken per round. */
export const ARCHIVE_BATCH = 50;

/**
 * One round of archiving: takes up to `limit` due archives (src/executions/archive.ts), copies
 * their logs to the store, and records each result (done, or due again after its backoff: no
 * limit on tries; the lines stay in Postgres meanwhile). Returns how many it took, so a caller
 * can go on while rounds come back full.
 */
export async function archiveDue(pool: pg.Pool, store: ArtifactStore, log: Log, limit = ARCHIVE_BATCH): Promise<number> {
  const due = await takeDueArchives(pool, limit);
  if (due.length === 0) return 0;
  const { done, failed } = await archiveBatch(pool, store, due);
  await markArchived(pool, done);
  await markArchiveFailed(pool, failed.map((f) => f.archive));
  for (const { archive, error } of failed) {
    log(`execution ${archive.id}: archiving its log to ${store.description} failed (try ${archive.failures + 1}): ${error.message}`, {
      level: 'warn', executionId: archive.id, attempt: archive.failures + 1, err: error,
    });
  }
  return due.length;
}
