import type pg from 'pg';
import type { Fence } from '../executions/fence.js';
import { handBack } from '../executions/handBack.js';
import type { Log } from '../ops/log.js';
import type { KilnMetrics } from '../ops/metrics.js';
import { LeaseKeeper } from './leases.js';

/** How long stopped executions get to destroy their containers before they are handed back. */
export const HAND_BACK_WAIT_MS = 15_000;

/**
 * The worker's LeaseKeeper, which also knows every execution running in this process (each holds
 * a lease from its claim until its container is gone; see runExecution), so that a shutting-down
 * worker can stop the ones still running at the end of its grace period.
 */
export class WorkerLeases extends LeaseKeeper {
  private readonly running = new Map<string, { fence: Fence; onLost: (reason: string) => void }>();
  /**
   * Executions being handed back whose runs have not ended yet, with what to call when they have
   * (several callers may wait: the worker's drain and a shortened grace, see handBackNow).
   */
  private readonly stopping = new Map<string, Array<(containerGone: boolean) => void>>();

  override hold(fence: Fence, onLost: (reason: string) => void): void {
    super.hold(fence, onLost);
    this.running.set(fence.id, { fence, onLost });
  }

  /**
   * Called by runExecution once its run is over: `containerGone` says whether its container is
   * confirmed removed (or never existed). Only such a run may be handed back at once.
   */
  override release(executionId: string, containerGone = true): void {
    super.release(executionId, containerGone);
    this.running.delete(executionId);
    const waiting = this.stopping.get(executionId) ?? [];
    this.stopping.delete(executionId);
    for (const ended of waiting) ended(containerGone);
  }

  /** How many executions run in this process now. */
  get size(): number {
    return this.running.size;
  }

  /**
   * Stops every execution still running here as if its claim were lost: its container is destroyed
   * at once and the run ends without writing an outcome. Resolves, within `waitMs`, with the fences
   * of the runs that ended with their containers confirmed gone: those are the ones to hand back.
   * A run whose container could not be removed by then is not among them: it stops trying at the
   * deadline (see LeaseKeeper.shutDownBy) and its lease is left to expire (never two at once).
   */
  async stopAll(reason: string, waitMs: number): Promise<Fence[]> {
    // Runs end a moment before the wait does, so a run that gives up is not mistaken for one still going.
    this.shutDownBy(Date.now() + Math.max(0, waitMs - 1000));
    const runs = [...this.running.values()];
    const ended: Fence[] = [];
    await Promise.all(
      runs.map(
        ({ fence, onLost }) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, waitMs);
            const waiting = this.stopping.get(fence.id) ?? [];
            this.stopping.set(fence.id, waiting);
            waiting.push((containerGone) => {
              clearTimeout(timer);
              if (containerGone) ended.push(fence);
              resolve();
            });
            onLost(reason);
          }),
      ),
    );
    return ended;
  }
}

/**
 * Ends the grace of a shutting-down worker early (a second SIGTERM/SIGINT): stops every execution
 * still running in it at once and hands them back to the queue, as the worker's drain does at the
 * end of its grace (the drain then finds nothing left to wait for). Safe alongside that drain: a
 * run is stopped once and handed back once (handBack changes only rows still RUNNING under the
 * claim). Resolves with how many were handed back; never rejects (failures are logged: the leases
 * then expire and the leader re-queues them).
 */
export async function handBackNow(
  leases: unknown,
  opts: { pool: pg.Pool; reason: string; log: Log; metrics?: Pick<KilnMetrics, 'executionsRequeued'> },
): Promise<number> {
  if (!(leases instanceof WorkerLeases) || leases.size === 0) return 0;
  opts.log(`shutdown: stopping ${leases.size} running execution(s) now and handing them back`, { level: 'warn' });
  try {
    const ended = await leases.stopAll(opts.reason, HAND_BACK_WAIT_MS);
    const requeued = await handBack(opts.pool, ended, opts.reason, opts.log);
    opts.metrics?.executionsRequeued('shutdown', requeued.length);
    return requeued.length;
  } catch (err) {
    opts.log(`shutdown: handing executions back failed: ${(err as Error).message}`, { level: 'error', err });
    return 0;
  }
}
