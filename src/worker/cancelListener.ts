import type pg from 'pg';
import { PgListener } from '../events/PgListener.js';
import type { Log } from '../ops/log.js';

/** The channel `cancelExecutions` (src/queue/executionQueue.ts) notifies with an execution id. */
export const CANCEL_CHANNEL = 'kiln_cancel';

/**
 * Delivers cancel requests to the executions this worker process runs, whichever API process
 * recorded them: one dedicated connection LISTENs on `kiln_cancel` for the whole process. A
 * cancel is seen within a round trip of its commit, with no polling.
 *
 * NOTIFY keeps nothing for absent listeners, so every execution is checked against
 * `cancel_requested_at` once when it starts being watched (a cancel that committed between the
 * claim and the watch) and again after each reconnection.
 *
 * It also knows which executions run in this process, which is what the orphan reaper must
 * never touch.
 */
export class CancelListener {
  private readonly watched = new Map<string, () => void>();
  private readonly listener: PgListener;

  constructor(
    private readonly pool: pg.Pool,
    connection: pg.ClientConfig,
    private readonly log: Log,
  ) {
    this.listener = new PgListener({
      connection,
      channels: [CANCEL_CHANNEL],
      onNotification: (_channel, executionId) => this.cancel(executionId),
      onReconnect: () => this.recheck([...this.watched.keys()]),
      log,
    });
  }

  start(): Promise<void> {
    return this.listener.start();
  }

  stop(): Promise<void> {
    return this.listener.stop();
  }

  /**
   * Calls `onCancel` (once) when a cancel of `executionId` is requested, from now until the
   * returned function is called. The execution counts as running in this process meanwhile.
   */
  watch(executionId: string, onCancel: () => void): () => void {
    let fired = false;
    const fire = () => {
      if (fired) return;
      fired = true;
      onCancel();
    };
    this.watched.set(executionId, fire);
    this.recheck([executionId]);
    return () => {
      if (this.watched.get(executionId) === fire) this.watched.delete(executionId);
    };
  }

  /** Whether an execution is being run (watched) by this process. */
  runs(executionId: string): boolean {
    return this.watched.has(executionId);
  }

  private cancel(executionId: string): void {
    const fire = this.watched.get(executionId);
    if (fire === undefined) return; // another worker's execution
    this.log(`execution ${executionId}: cancel requested; stopping it`, { executionId });
    fire();
  }

  private recheck(ids: string[]): void {
    if (ids.length === 0) return;
    this.pool
      .query<{ id: string }>(`select id from executions where id = any($1::uuid[]) and cancel_requested_at is not null`, [ids])
      .then(
        ({ rows }) => rows.forEach((r) => this.cancel(r.id)),
        (err: Error) => this.log(`cancel check failed: ${err.message}`, { level: 'warn', err, executionIds: ids }),
      );
  }
}
