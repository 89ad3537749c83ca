import type pg from 'pg';
import { inTransaction } from '../queue/sql.js';
import type { Fence } from '../worker/executionState.js';
import { LeaseKeeper } from '../worker/leases.js';
import { requeueAsNextAttempt, type LostAttempt } from '../worker/requeueExpired.js';
import type { Log } from './log.js';

/**
 * The worker's LeaseKeeper, which also knows every execution running in this process (each holds
 * a lease from its claim until its container is gone; see runExecution), so that a shutting-down
 * worker can stop the ones still running at the end of its grace period.
 */
export class WorkerLeases extends LeaseKeeper {
  private readonly running = new Map<string, { fence: Fence; onLost: (reason: string) => void }>();
  /** Executions being handed back whose runs have not ended yet, with what to call when they have. */
  private readonly stopping = new Map<string, () => void>();

  override hold(fence: Fence, onLost: (reason: string) => void): void {
    super.hold(fence, onLost);
    this.running.set(fence.id, { fence, onLost });
  }

  /** Called by runExecution once the execution's container is destroyed (or never existed). */
  override release(executionId: string): void {
    super.release(executionId);
    this.running.delete(executionId);
    this.stopping.get(executionId)?.();
    this.stopping.delete(executionId);
  }

  /** How many executions run in this process now. */
  get size(): number {
    return this.running.size;
  }

  /**
   * Stops every execution still running here as if its claim were lost: its container is destroyed
   * at once and the run ends without writing an outcome. Resolves, within `waitMs`, with the fences
   * of the runs that ended (their containers are gone): those are the ones to hand back.
   */
  async stopAll(reason: string, waitMs: number): Promise<Fence[]> {
    const runs = [...this.running.values()];
    const ended: Fence[] = [];
    await Promise.all(
      runs.map(
        ({ fence, onLost }) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, waitMs);
            this.stopping.set(fence.id, () => {
              clearTimeout(timer);
              ended.push(fence);
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
 * Hands executions this worker stopped back to the queue as their next attempt, at once, with
 * `reason` in `error` and as a SYSTEM log line (the same path as an expired lease: see
 * requeueAsNextAttempt). Only rows still RUNNING under these very claims change, so an execution
 * that finished, was cancelled or was already re-queued elsewhere is left alone.
 * Returns the executions re-queued.
 */
export async function handBack(pool: pg.Pool, fences: readonly Fence[], reason: string, log: Log): Promise<LostAttempt[]> {
  if (fences.length === 0) return [];
  const rows = await inTransaction(pool, async (sql) => {
    const lost = await sql<LostAttempt>(
      `select e.id, e.job_id, e.attempt, e.worker_id, e.priority
         from executions e join unnest($1::uuid[], $2::int[], $3::text[]) as f(id, attempt, worker) on e.id = f.id
        where e.attempt = f.attempt and e.worker_id = f.worker and e.status = 'RUNNING'
        for update of e`,
      [fences.map((f) => f.id), fences.map((f) => f.attempt), fences.map((f) => f.workerId)],
    );
    await requeueAsNextAttempt(sql, lost, (e) => `attempt ${e.attempt} handed back: ${reason}; re-queued as attempt ${e.attempt + 1}`);
    return lost;
  });
  for (const e of rows) {
    log(`execution ${e.id}: attempt ${e.attempt} handed back: ${reason}; re-queued as attempt ${e.attempt + 1}`, {
      level: 'warn', executionId: e.id, jobId: e.job_id, attempt: e.attempt, workerId: e.worker_id,
    });
  }
  return rows;
}
