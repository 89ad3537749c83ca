import type pg from 'pg';
import type { Fence } from '../executions/fence.js';
import { renewLeases } from '../executions/leases.js';
import type { RunRegistry } from './run/RunRegistry.js';

/**
 * Keeps the claims of the runs this process holds (see RunRegistry) alive. Every `leaseMs / 4`
 * one statement renews all of them; a run whose renewal matches no row was taken away (re-queued
 * as a next attempt, or deleted) and is stopped at once.
 *
 * Invariant (self-fencing): a worker that has not renewed for `0.7 * leaseMs` stops every
 * execution it runs, by its own clock and whatever its connection does, so its containers are
 * gone before the lease expires and the execution is handed to another worker.
 */
export class LeaseKeeper {
  private lastRenewal = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private renewing = false;

  constructor(
    private readonly pool: pg.Pool,
    readonly leaseMs: number,
    private readonly runs: RunRegistry,
    private readonly log: (m: string) => void = () => {},
  ) {
    // The watchdog counts from the first claim after an idle spell, not from the last renewal before it.
    runs.onHold(() => {
      if (runs.claims().length === 1) this.lastRenewal = Date.now();
    });
  }

  start(): void {
    this.lastRenewal = Date.now();
    this.timer = setInterval(() => this.tick(), Math.max(100, Math.floor(this.leaseMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private lose(fences: Fence[], reason: string): void {
    for (const fence of fences) {
      if (!this.runs.holds(fence)) continue;
      this.log(`lease of execution ${fence.id} lost: ${reason}`);
      this.runs.lose(fence, reason);
    }
  }

  private tick(): void {
    const held = this.runs.claims();
    if (held.length === 0) {
      this.lastRenewal = Date.now();
      return;
    }
    if (Date.now() - this.lastRenewal > this.leaseMs * 0.7) {
      this.lose(held, `no heartbeat reached Postgres for ${Date.now() - this.lastRenewal} ms`);
      return;
    }
    if (this.renewing) return; // a renewal still in flight (slow or cut link): the watchdog above decides
    this.renewing = true;
    // The lease runs from when Postgres executed the renewal, which is after it was sent: the
    // watchdog counts from the send, so a slow answer never makes it trust a lease longer than it is.
    const sentAt = Date.now();
    renewLeases(this.pool, held, this.leaseMs)
      .then(
        (renewed) => {
          this.lastRenewal = sentAt;
          this.lose(held.filter((f) => !renewed.has(f.id)), 're-queued, finished or deleted elsewhere');
        },
        (err: Error) => this.log(`lease renewal failed: ${err.message}`),
      )
      .finally(() => {
        this.renewing = false;
      });
  }
}
