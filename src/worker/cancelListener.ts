import type pg from 'pg';
import { PgListener } from '../events/PgListener.js';
import type { Log } from '../util/log.js';
import type { HeldClaim, RunRegistry } from './run/RunRegistry.js';

/** The channel `cancelExecutions` (src/executions/cancel.ts) notifies with an execution id. */
export const CANCEL_CHANNEL = 'kiln_cancel';
/** How long a notified cancel is remembered for a run that is held late. */
const RECENT_MS = 60_000;

/**
 * Delivers cancel requests to the runs this worker process holds (see RunRegistry), whichever
 * API process recorded them: one dedicated connection LISTENs on `kiln_cancel` for the whole
 * process. A cancel is seen within a round trip of its commit, with no polling.
 *
 * NOTIFY keeps nothing for absent listeners, so a run is checked against `cancel_requested_at`
 * when it is held (a cancel that committed between the claim and the hold), unless the listener
 * has been listening since before its claim was sent, and every run again after each reconnection.
 */
export class CancelListener {
  /** Cancels notified lately (id -> when), for a run held just after its cancel arrived. */
  private readonly recent = new Map<string, number>();
  private readonly listener: PgListener;

  constructor(
    private readonly pool: pg.Pool,
    connection: pg.ClientConfig,
    private readonly log: Log,
    private readonly runs: RunRegistry,
  ) {
    this.listener = new PgListener({
      connection,
      channels: [CANCEL_CHANNEL],
      onNotification: (_channel, executionId) => this.notified(executionId),
      onReconnect: () => this.recheck(runs.ids()),
      log,
    });
    runs.onHold((claim) => this.held(claim));
  }

  start(): Promise<void> {
    return this.listener.start();
  }

  stop(): Promise<void> {
    return this.listener.stop();
  }

  /**
   * A run is held from now on. When the listener has been listening since before its claim was
   * sent, a cancel committed after the claim was notified (and is in `recent` if it came before
   * this hold), so Postgres need not be asked; otherwise it is.
   */
  private held(claim: HeldClaim): void {
    const since = this.listener.connectedSince;
    if (this.recent.has(claim.id)) this.cancel(claim.id);
    else if (claim.claimSentAt === undefined || since === null || since > claim.claimSentAt) this.recheck([claim.id]);
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
    if (!this.runs.has(executionId)) return; // another worker's execution
    this.log(`execution ${executionId}: cancel requested; stopping it`, { executionId });
    this.runs.cancel(executionId);
  }

  private recheck(ids: string[]): void {
    if (ids.length === 0) return;
    this.pool
      .query<{ id: string }>(`select id from executions where id = any($1::uuid[]) and cancel_requested_at is not null`, [ids])
      .then(
        ({ rows }) => {
          for (const r of rows) this.cancel(r.id);
        },
        (err: Error) => this.log(`cancel check failed: ${err.message}`, { level: 'warn', err, executionIds: ids }),
      );
  }
}
