import type pg from 'pg';
import type { Log } from '../ops/log.js';
import { fireDue, type FireOptions } from './fireDue.js';
import { requeueExpired } from './requeueExpired.js';

/** Arbitrary constant key of the scheduler leader's session advisory lock ("kiln"). */
const LEADER_LOCK_KEY = 0x6b696c6e;

export interface SchedulerOptions extends FireOptions {
  pool: pg.Pool;
  /** How often a follower tries to become the leader. */
  followerRetryMs?: number;
  /** How often the leader looks for expired leases. */
  requeueEveryMs?: number;
  /** Longest sleep of the leader even with nothing due (a safety net under the notifications). */
  maxSleepMs?: number;
  log: Log;
  /** Told how many executions each pass re-queued from expired leases (metrics). */
  onRequeued?: (count: number) => void;
}

/**
 * Fires due schedules at their fire time and re-queues executions of dead workers.
 *
 * One leader at a time among all worker processes: the one holding a session advisory lock on
 * its own connection. When the leader dies its session ends, the lock is free, and a follower
 * takes over within `followerRetryMs`. Firing is idempotent (see fireDue), so even two
 * leaders for a moment cannot fire a tick twice.
 *
 * Precision does not depend on graphile-worker's polling: the leader sleeps until the earliest
 * `next_run_at` (or a `kiln_schedules` notification from submit, pause, resume or delete), then
 * queues the executions at once, and graphile-worker's insert notification wakes the workers.
 */
export class Scheduler {
  private client: pg.PoolClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();
  private lastRequeue = 0;
  /** Whether this process currently holds the leadership. */
  leader = false;

  constructor(private readonly opts: SchedulerOptions) {}

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    await this.resign();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let sleepMs: number;
      try {
        sleepMs = (await this.ensureLeader()) ? await this.lead() : (this.opts.followerRetryMs ?? 500);
      } catch (err) {
        this.opts.log(`scheduler: ${(err as Error).message}`, { level: 'error', err });
        await this.resign();
        sleepMs = this.opts.followerRetryMs ?? 500;
      }
      await this.sleep(sleepMs);
    }
  }

  /** One pass as the leader; resolves with how long to sleep. */
  private async lead(): Promise<number> {
    const now = Date.now();
    while ((await fireDue(this.opts.pool, this.opts, now)) === this.opts.batchSize) {
      if (this.stopped) return 0;
    }
    if (now - this.lastRequeue >= (this.opts.requeueEveryMs ?? 1000)) {
      this.lastRequeue = now;
      this.opts.onRequeued?.(await requeueExpired(this.opts.pool, this.opts.log));
    }
    const { rows } = await this.opts.pool.query<{ at: Date | null }>(`select min(next_run_at) as at from jobs where next_run_at is not null`);
    const cap = Math.min(this.opts.maxSleepMs ?? 1000, this.opts.requeueEveryMs ?? 1000);
    const at = rows[0]?.at;
    return at ? Math.max(0, Math.min(cap, new Date(at).getTime() - Date.now())) : cap;
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = () => {
        if (this.timer) clearTimeout(this.timer);
        this.wake = null;
        resolve();
      };
      this.timer = setTimeout(() => this.wake?.(), ms);
    });
  }

  private async ensureLeader(): Promise<boolean> {
    if (this.leader && this.client) return true;
    const client = await this.opts.pool.connect();
    try {
      const { rows } = await client.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [LEADER_LOCK_KEY]);
      if (!rows[0]!.ok) {
        client.release();
        return false;
      }
      // Schedule changes wake the leader at once instead of at its next safety-net wake-up.
      client.on('notification', () => this.wake?.());
      client.on('error', () => void this.resign());
      await client.query('listen kiln_schedules');
      this.client = client;
      this.leader = true;
      this.opts.log('scheduler: this worker is the leader');
      return true;
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
  }

  private async resign(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (this.leader) this.opts.log('scheduler: leadership released');
    this.leader = false;
    if (!client) return;
    client.removeAllListeners('notification');
    try {
      await client.query('unlisten kiln_schedules');
      await client.query('select pg_advisory_unlock($1)', [LEADER_LOCK_KEY]);
      client.release();
    } catch (err) {
      // A broken connection is destroyed, which ends its session and frees the lock.
      client.release(err as Error);
    }
  }
}
