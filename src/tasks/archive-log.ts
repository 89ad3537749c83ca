import type { Task } from 'graphile-worker';
import type pg from 'pg';
import { markArchived } from '../executions/archive.js';
import { archiveLogToStore } from '../logs/archive.js';
import { TASKS } from '../executions/queue.js';
import type { Log } from '../ops/log.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';

/** Longest wait between two tries of an archive while the store fails. */
export const ARCHIVE_RETRY_MAX_MS = 15_000;

/** Wait before the next try after `failures` failed ones: 1 s, 2 s, 4 s ... capped. */
export function archiveRetryDelayMs(failures: number): number {
  return Math.min(1000 * 2 ** Math.max(0, failures - 1), ARCHIVE_RETRY_MAX_MS);
}

/**
 * graphile-worker task: copies a finished execution's log to the store and records where.
 * While the store fails, the archive is queued again with a capped backoff (archiveRetryDelayMs)
 * and no limit on tries: graphile-worker's own backoff grows to hours and gives up after
 * max_attempts, which would leave a log unarchived long after the store is back, or forever.
 * The lines stay in Postgres meanwhile. Failing to queue the next try (Postgres down) throws,
 * and graphile-worker's retry takes over.
 */
export function archiveLogTask(pool: pg.Pool, store: ArtifactStore, log: Log = () => {}): Task {
  return async (payload, helpers) => {
    const { executionId, failures = 0 } = payload as { executionId: string; failures?: number };
    const { rows } = await pool.query(`select 1 from executions where id = $1`, [executionId]);
    if (rows.length === 0) return; // deleted meanwhile: nothing to keep
    let key: string;
    try {
      key = await archiveLogToStore(pool, store, executionId);
    } catch (err) {
      // graphile-worker retries with backoff; the lines stay in Postgres meanwhile.
      const tries = failures + 1;
      const delayMs = archiveRetryDelayMs(tries);
      log(`execution ${executionId}: archiving its log to ${store.description} failed (try ${tries}), next try in ${delayMs} ms: ${(err as Error).message}`, {
        level: 'warn', executionId, attempt: tries, err,
      });
      // Same key: a running job's key moves to the new entry, so one archive stays queued.
      await helpers.addJob(TASKS.archiveLog, { executionId, failures: tries }, {
        jobKey: `archive:${executionId}`, runAt: new Date(Date.now() + delayMs), maxAttempts: 25,
      });
      return;
    }
    await markArchived(pool, executionId, key);
    log(`execution ${executionId}: log archived as ${key}`, { level: 'debug', executionId });
  };
}
