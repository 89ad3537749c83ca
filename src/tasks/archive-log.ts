import type pg from 'pg';
import { recordArchives, takeDueArchives, type DueArchive } from '../executions/archive.js';
import { inTransaction, sqlOfPg } from '../util/sql.js';
import { expectPack, packRecorded } from '../executions/storeDeletions.js';
import { archiveBatch, isSmallLog, type ArchiveResults } from '../logs/archiveBatch.js';
import type { Log } from '../util/log.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';

export { ARCHIVE_RETRY_MAX_MS, archiveRetryDelayMs } from '../executions/archive.js';

/** Archives taken per round: a round's small logs are one pack. */
export const ARCHIVE_BATCH = 100;

/**
 * One round of archiving (src/executions/archive.ts): takes up to `limit` due archives. The small
 * logs are copied to the store while their rows stay locked, and recorded in the same transaction
 * (done, or due again after the backoff: no limit on tries; the lines stay in Postgres meanwhile);
 * the big ones are reserved, copied page by page after the commit, and recorded then. Returns how
 * many it took, so a caller can go on while rounds come back full.
 */
export async function archiveDue(pool: pg.Pool, store: ArtifactStore, log: Log, limit = ARCHIVE_BATCH): Promise<number> {
  const { taken, big } = await inTransaction(pool, async (sql) => {
    const due = await takeDueArchives(sql, limit);
    const small = due.filter(isSmallLog);
    const results = await archiveBatch(pool, store, small, (key) => expectPack(pool, key));
    const reserved = due.filter((a) => !isSmallLog(a));
    await recordArchives(sql, { done: results.done, failed: results.failed.map((f) => f.archive), reserved });
    await packRecorded(sql, [...new Set(results.done.filter((d) => d.range !== undefined).map((d) => d.key))]);
    report(results, store, log);
    return { taken: due.length, big: reserved };
  });
  if (big.length > 0) {
    const results = await archiveBatch(pool, store, big, (key) => expectPack(pool, key));
    await recordArchives(sqlOfPg(pool), { done: results.done, failed: results.failed.map((f) => f.archive) });
    report(results, store, log);
  }
  return taken;
}

function report(results: ArchiveResults, store: ArtifactStore, log: Log): void {
  for (const { archive, error } of results.failed) failed(archive, error, store, log);
}

function failed(archive: DueArchive, error: Error, store: ArtifactStore, log: Log): void {
  log(`execution ${archive.id}: archiving its log to ${store.description} failed (try ${archive.failures + 1}): ${error.message}`, {
    level: 'warn', executionId: archive.id, attempt: archive.failures + 1, err: error,
  });
}
