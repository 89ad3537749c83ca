import type pg from 'pg';
import { handBack } from '../../executions/handBack.js';
import type { Log } from '../../util/log.js';
import type { KilnMetrics } from '../../ops/metrics.js';
import type { RunRegistry } from './RunRegistry.js';

/** How long stopped executions get to destroy their containers before they are handed back. */
export const HAND_BACK_WAIT_MS = 15_000;

/**
 * Ends the grace of a shutting-down worker early (a second SIGTERM/SIGINT): stops every execution
 * still running in it at once and hands them back to the queue, as the worker's drain does at the
 * end of its grace (the drain then finds nothing left to wait for). Safe alongside that drain: a
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
    const ended = await runs.stopAll(opts.reason, HAND_BACK_WAIT_MS);
    const requeued = await handBack(opts.pool, ended, opts.reason, opts.log);
    opts.metrics?.executionsRequeued('shutdown', requeued.length);
    return requeued.length;
  } catch (err) {
    opts.log(`shutdown: handing executions back failed: ${(err as Error).message}`, { level: 'error', err });
    return 0;
  }
}
