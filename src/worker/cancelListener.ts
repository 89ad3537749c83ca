import type pg from 'pg';
import { PgListener } from '../events/PgListener.js';
import type { Log } from '../ops/log.js';

/** The channel `cancelExecutions` (src/queue/executionQueue.ts) notifies with an execution id. */
export const CANCEL_CHANNEL = 'kiln_cancel';
/** How long a notified cancel is remembered for a run that starts watching late. */
const RECENT_MS = 60_000;

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
  /** Cancels notified lately (id -> when), for a run that starts watching just after its cancel arrived. */
  private readonly recent = new Map<string, number>();
  private readonly listener: PgListener;

  constructor(
    private readonly pool: pg.Pool,
    connection: pg.ClientConfig,
    private readonly log: Log,
  ) {
    this.listener = new PgListener({
      connection,
      channels: [CANCEL_CHANNEL],
      onNotification: (_channel, executionId) => this.notified(executionId),
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
   * `claimedAt` (epoch ms, taken before the claim was sent): when the listener has been listening
   * since before then, a cancel committed after the claim was notified (and is in `recent` if it
   * came before this watch), so Postgres need not be asked; otherwise it is.
   */
  watch(executionId: string, onCancel: () => void, claimedAt: number | null = null): () => void {
    let fired = false;
    const fire = () => {
      if (fired) return;
      fired = true;
      onCancel();
    };
    this.watched.set(executionId, fire);
    const since = this.listener.connectedSince;
    if (this.recent.has(executionId)) this.cancel(executionId);
    else if (claimedAt === null || since === null || since > claimedAt) this.recheck([executionId]);
    return () => {
      if (this.watched.get(executionId) === fire) this.watched.delete(executionId);
    };
  }

  /** Whether an execution is being run (watched) by this process. */
  runs(executionId: string): boolean {
    return this.watched.has(executionId);
  }

  private notified(executionId: string): void {
    const now = Date.now();
    this.recent.set(executionId, now);
    for (const [id, at] of this.recent) {
      if (now - at < RECENT_MS) break; // oldest first: the rest are newer
      this.recent.delete(id);
    }
    this.cancel(executionId);
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
