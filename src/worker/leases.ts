import type pg from 'pg';
import type { Fence } from '../executions/fence.js';
import { renewLeases } from '../executions/leases.js';

interface Held {
  fence: Fence;
  onLost: (reason: string) => void;
}

/**
 * Keeps this worker's claims on its running executions alive. Every `leaseMs / 4` one statement
 * renews all of them; an execution whose renewal matches no row was taken away (re-queued as a
 * next attempt, or deleted) and is stopped at once.
 *
 * Invariant (self-fencing): a worker that has not renewed for `0.7 * leaseMs` stops every
 * execution it runs, by its own clock and whatever its connection does, so its containers are
 * gone before the lease expires and the execution is handed to another worker.
 */
export class LeaseKeeper {
  private readonly held = new Map<string, Held>();
  private lastRenewal = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private renewing = false;
  private stopBy: number | null = null;

  constructor(
    private readonly pool: pg.Pool,
    readonly leaseMs: number,
    private readonly log: (m: string) => void = () => {},
  ) {}

  start(): void {
    this.lastRenewal = Date.now();
    this.timer = setInterval(() => this.tick(), Math.max(100, Math.floor(this.leaseMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Holds `fence` until `release`; `onLost` is called once if the claim is lost meanwhile. */
  hold(fence: Fence, onLost: (reason: string) => void): void {
    if (this.held.size === 0) this.lastRenewal = Date.now();
    this.held.set(fence.id, { fence, onLost });
  }

  /**
   * Stops renewing the claim. `containerGone` says whether the execution's container is confirmed
   * removed (see runExecution): only then may it be handed to a next attempt at once; otherwise its
   * lease is left to expire (see WorkerLeases.stopAll).
   */
  release(executionId: string, containerGone = true): void {
    void containerGone;
    this.held.delete(executionId);
  }

  /** Whether the claim on `executionId` is still held and renewed (not released, not lost). */
  holds(executionId: string): boolean {
    return this.held.has(executionId);
  }

  /**
   * The process shuts down and must be gone by `deadline` (epoch ms): runs waiting for their
   * containers to be removed stop waiting then (see runExecution). Earlier deadlines win.
   */
  shutDownBy(deadline: number): void {
    this.stopBy = this.stopBy === null ? deadline : Math.min(this.stopBy, deadline);
  }

  /** When the process must be done (epoch ms) once it shuts down; null until then. */
  get shutdownDeadline(): number | null {
    return this.stopBy;
  }

  private lose(ids: string[], reason: string): void {
    for (const id of ids) {
      const h = this.held.get(id);
      if (!h) continue;
      this.held.delete(id);
      this.log(`lease of execution ${id} lost: ${reason}`);
      h.onLost(reason);
    }
  }

  private tick(): void {
    if (this.held.size === 0) {
      this.lastRenewal = Date.now();
      return;
    }
    if (Date.now() - this.lastRenewal > this.leaseMs * 0.7) {
      this.lose([...this.held.keys()], `no heartbeat reached Postgres for ${Date.now() - this.lastRenewal} ms`);
      return;
    }
    if (this.renewing) return; // a renewal still in flight (slow or cut link): the watchdog above decides
    this.renewing = true;
    // The lease runs from when Postgres executed the renewal, which is after it was sent: the
    // watchdog counts from the send, so a slow answer never makes it trust a lease longer than it is.
    const sentAt = Date.now();
    const fences = [...this.held.values()].map((h) => h.fence);
    renewLeases(this.pool, fences, this.leaseMs)
      .then(
        (renewed) => {
          this.lastRenewal = sentAt;
          this.lose(fences.map((f) => f.id).filter((id) => !renewed.has(id)), 're-queued, finished or deleted elsewhere');
        },
        (err: Error) => this.log(`lease renewal failed: ${err.message}`),
      )
      .finally(() => {
        this.renewing = false;
      });
  }
}
