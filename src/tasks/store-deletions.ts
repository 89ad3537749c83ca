import type { Task } from 'graphile-worker';
import type pg from 'pg';
import { duePackCompactions, dueStoreDeletions, storeDeletionFailed, storeDeletionSwept } from '../executions/storeDeletions.js';
import { compactPack } from '../logs/logPacks.js';
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
 * logs and artifacts), as recorded in `store_deletions` and `log_pack_compactions` by the
 * transaction that deleted them. Run
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
    const packs = await compactPacks(pool, store, log);
    if (swept > 0 || failed > 0 || packs.compacted > 0 || packs.failed > 0) {
      log(`store deletions: swept ${swept} prefix(es) of deleted executions, compacted ${packs.compacted} log pack(s), ${failed + packs.failed} to retry`);
    }
  };
}

/** Rewrites the log packs that hold bytes of deleted executions (see compactPack), a bounded number per run. */
async function compactPacks(pool: pg.Pool, store: ArtifactStore, log: Log): Promise<{ compacted: number; failed: number }> {
  let compacted = 0;
  let failed = 0;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const due = await duePackCompactions(pool, BATCH);
    for (const key of due) {
      try {
        if (await compactPack(pool, store, key, RETRY_SEC)) compacted++;
      } catch (err) {
        failed++;
        log(`store deletions: compacting ${key} in ${store.description}: ${(err as Error).message}; retrying in ${RETRY_SEC}s`, { level: 'warn' });
      }
    }
    if (due.length < BATCH) break;
  }
  return { compacted, failed };
}
