import type { Task } from 'graphile-worker';
import type pg from 'pg';
import type { Log } from '../util/log.js';
import { fireDue, type FireOptions } from '../scheduler/fireDue.js';
import { requeueExpired } from '../executions/requeueExpired.js';
import { pruneTicks } from './prune-ticks.js';

/**
 * graphile-worker cron task, every minute on one worker: the safety net under the scheduler
 * leader's precise loop. It fires anything due that no leader fired (fireDue is idempotent and
 * skips rows a leader holds) and re-queues executions whose lease expired. With a retention, it
 * also prunes ticks older than that (bounded per run, see pruneTicks).
 */
export function housekeepingTask(pool: pg.Pool, fire: FireOptions, log: Log, tickRetentionMs: number | null = null): Task {
  return async () => {
    let fired = 0;
    let pass: { jobs: number; more: boolean };
    do {
      pass = await fireDue(pool, fire);
      fired += pass.jobs;
    } while (pass.more);
    const requeued = await requeueExpired(pool, log);
    const pruned = tickRetentionMs === null ? 0 : await pruneTicks(pool, tickRetentionMs);
    if (fired > 0 || requeued > 0 || pruned > 0) {
      log(`housekeeping: processed ${fired} due job(s), re-queued ${requeued} execution(s), pruned ${pruned} tick(s)`);
    }
  };
}
