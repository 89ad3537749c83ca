import type { Task } from 'graphile-worker';
import type pg from 'pg';
import { dueStoreDeletions, storeDeletionFailed, storeDeletionSwept } from '../executions/storeDeletions.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import type { Log } from '../util/log.js';

/** Prefixes swept per round. */
const BATCH = 100;
/** Rounds per run of the task: bounded work per run; the next run (a minute at most) goes on. */
const MAX_ROUNDS = 10;
/** A prefix the store failed to delete is tried again after this long. */
const RETRY_SEC = 60;

/**
 * graphile-worker task: removes from the store everything of deleted executions (their archived
 * logs and artifacts), as recorded in `store_deletions` by the transaction that deleted them. Run
 * at once by a job's deletion and every minute by the housekeeping crontab, which retries what the
 * store refused and makes the second sweep.
 */
export function storeDeletionsTask(pool: pg.Pool, store: ArtifactStore, log: Log): Task {
  return async () => {
    let swept = 0;
    let failed = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const due = await dueStoreDeletions(pool, BATCH);
      for (const deletion of due) {
        try {
          await store.deletePrefix(deletion.prefix);
          await storeDeletionSwept(pool, deletion);
          swept++;
        } catch (err) {
          failed++;
          log(`store deletions: ${deletion.prefix} in ${store.description}: ${(err as Error).message}; retrying in ${RETRY_SEC}s`, { level: 'warn' });
          await storeDeletionFailed(pool, deletion.prefix, RETRY_SEC);
        }
      }
      if (due.length < BATCH) break;
    }
    if (swept > 0 || failed > 0) log(`store deletions: swept ${swept} prefix(es) of deleted executions, ${failed} to retry`);
  };
}
