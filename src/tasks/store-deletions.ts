import type { Task } from 'graphile-worker';
import type pg from 'pg';
import { duePackCompactions, dueStoreDeletions, storeDeletionFailed, storeDeletionSwept } from '../executions/storeDeletions.js';
import { compactPack } from '../executions/compactPack.js';
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
 * transaction that deleted them. Run at once by a job's deletion and every minute by the
 * housekeeping crontab, which retries what the store refused and makes the second sweep.
 */
export function storeDeletionsTask(pool: pg.Pool, store: ArtifactStore, log: Log): Task {
  const retrying = (what: string, err: unknown) =>
    log(`store deletions: ${what} in ${store.description}: ${(err as Error).message}; retrying in ${RETRY_SEC}s`, { level: 'warn' });
  return async () => {
    const prefixes = await inRounds(
      () => dueStoreDeletions(pool, BATCH),
      async (deletion) => {
        try {
          await store.deletePrefix(deletion.prefix);
          await storeDeletionSwept(pool, deletion);
          return true;
        } catch (err) {
          retrying(deletion.prefix, err);
          await storeDeletionFailed(pool, deletion.prefix, RETRY_SEC);
          return false;
        }
      },
    );
    // The log packs holding bytes of deleted executions are rewritten without them (compactPack).
    const packs = await inRounds(
      () => duePackCompactions(pool, BATCH),
      (key) =>
        compactPack(pool, store, key, RETRY_SEC).then(
          (taken) => (taken ? true : null),
          (err: unknown) => {
            retrying(`compacting ${key}`, err);
            return false;
          },
        ),
    );
    if (prefixes.done + prefixes.failed + packs.done + packs.failed > 0) {
      log(`store deletions: swept ${prefixes.done} prefix(es) of deleted executions, compacted ${packs.done} log pack(s), ${prefixes.failed + packs.failed} to retry`);
    }
  };
}

/**
 * Takes what `due` lists and does `each` of it, round after round while rounds come back full, at
 * most MAX_ROUNDS (the next run, a minute later at most, goes on). `each` says whether it was done
 * (null: another process had it).
 */
async function inRounds<T>(due: () => Promise<T[]>, each: (item: T) => Promise<boolean | null>): Promise<{ done: number; failed: number }> {
  const counts = { done: 0, failed: 0 };
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const items = await due();
    for (const item of items) {
      const done = await each(item);
      if (done === true) counts.done++;
      else if (done === false) counts.failed++;
    }
    if (items.length < BATCH) break;
  }
  return counts;
}
