import type pg from 'pg';
import { handBack } from '../../executions/handBack.js';
import type { Log } from '../../util/log.js';
import type { KilnMetrics } from '../../ops/metrics.js';
import type { RunRegistry } from './RunRegistry.js';

/** How long stopped executions get to destroy their containers before they are handed back. */
export const HAND_BACK_WAIT_MS = 15_000;

/**
 * Stops every execution still running in a shutting-down worker at once and hands them back to the
 * queue: at the end of the worker's drain grace, or earlier on a second SIGTERM/SIGINT (the drain
 * then finds nothing left to wait for). Containers first, then the queue (never two attempts at
 * once): only runs whose containers are confirmed gone are handed back; the others' leases expire
 * and the leader re-queues them. Safe alongside the drain: a
 * run is stopped once and handed back once (handBack changes only rows still RUNNING under the
 * claim). Resolves with how many were handed back; never rejects (failures are logged: the leases
 * then expire and the leader re-queues them).
 */
export async function handBackNow(
  runs: RunRegistry | null,
  opts: { pool: pg.Pool; reason: string; log: Log; metrics?: Pick<KilnMetrics, 'executionsRequeued'> },
): Promise<number> {
  if (runs === null || runs.size === 0) return 0;
  opts.log(`shutdown: stopping ${runs.size} running execution(s) now and handing them back`, { level: 'warn' });
  try {
    const stopping = runs.size;
    const ended = await runs.stopAll(opts.reason, HAND_BACK_WAIT_MS);
    if (ended.length < stopping) {
      opts.log(`shutdown: ${stopping - ended.length} execution(s) not handed back: their containers could not be confirmed removed in time; their leases expire and the leader re-queues them (the reaper and the next attempt remove the containers)`, {
        level: 'error',
      });
    }
    const requeued = await handBack(opts.pool, ended, opts.reason, opts.log);
    opts.metrics?.executionsRequeued('shutdown', requeued.length);
    return requeued.length;
  } catch (err) {
    opts.log(`shutdown: handing executions back failed: ${(err as Error).message}`, { level: 'error', err });
    return 0;
  }
}
