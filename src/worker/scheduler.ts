import { LockMode } from '@mikro-orm/core';
import type { MikroORM } from '@mikro-orm/postgresql';
import type pg from 'pg';
import { ExecutionTrigger, Job } from '../entities/index.js';
import { createExecution } from '../services/createExecution.js';
import { upcomingRuns } from '../services/schedules.js';

/** Arbitrary constant key of the scheduler leader's session advisory lock. */
const LEADER_LOCK_KEY = 0x6b696c6e; // "kiln"

export interface SchedulerOptions {
  orm: MikroORM;
  pool: pg.Pool;
  defaultImage: string;
  /** Longest sleep between looks at the schedule table (a schedule change is seen within this). */
  tickMs?: number;
  log: (message: string) => void;
}

/**
 * Fires due scheduled jobs. One leader at a time among all worker processes: the one holding a
 * session advisory lock on its own connection; the others retry, so leadership moves when the
 * leader's connection dies. Each fire runs in a transaction that locks the job row
 * (SKIP LOCKED), queues the execution and advances `next_run_at`, so a fire is recorded once.
 */
export class Scheduler {
  private client: pg.PoolClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private running: Promise<void> = Promise.resolve();
  leader = false;

  constructor(private readonly opts: SchedulerOptions) {}

  start(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    if (this.client) {
      await this.client.query('select pg_advisory_unlock($1)', [LEADER_LOCK_KEY]).catch(() => {});
      this.client.release();
      this.client = null;
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick()
        .catch((err: Error) => {
          this.opts.log(`scheduler: ${err.message}`);
          this.dropLeadership();
          return this.opts.tickMs ?? 1000;
        })
        .then((next) => this.schedule(next));
    }, ms);
  }

  private dropLeadership(): void {
    this.leader = false;
    this.client?.release(true);
    this.client = null;
  }

  /** One pass; resolves with how long to sleep before the next. */
  private async tick(): Promise<number> {
    const idle = this.opts.tickMs ?? 1000;
    if (!(await this.ensureLeader())) return idle;
    await this.fireDue();
    const { rows } = await this.opts.pool.query<{ ms: number | null }>(
      `select extract(epoch from (min(next_run_at) - now())) * 1000 as ms from jobs where not paused and next_run_at is not null`,
    );
    const ms = rows[0]?.ms;
    return ms === null || ms === undefined ? idle : Math.max(0, Math.min(idle, Number(ms)));
  }

  private async ensureLeader(): Promise<boolean> {
    if (this.leader && this.client) return true;
    this.client ??= await this.opts.pool.connect();
    const { rows } = await this.client.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [LEADER_LOCK_KEY]);
    this.leader = rows[0]!.ok;
    if (!this.leader) {
      this.client.release();
      this.client = null;
    } else {
      this.opts.log('scheduler: this worker is the leader');
    }
    return this.leader;
  }

  private async fireDue(): Promise<void> {
    for (;;) {
      const fired = await this.opts.orm.em.fork().transactional(async (em) => {
        const [job] = await em.find(
          Job,
          { nextRunAt: { $lte: new Date() }, paused: false },
          { orderBy: { nextRunAt: 'asc' }, limit: 1, lockMode: LockMode.PESSIMISTIC_PARTIAL_WRITE /* skip locked */ },
        );
        if (!job) return false;
        const fireTime = job.nextRunAt!;
        await createExecution(em, job, ExecutionTrigger.SCHEDULE, { defaultImage: this.opts.defaultImage, scheduledFor: fireTime });
        // Missed fires while no leader ran collapse into this one catch-up run.
        job.nextRunAt = job.runOnce ? null : (upcomingRuns(job, new Date(Math.max(fireTime.getTime(), Date.now())), 1)[0] ?? null);
        return true;
      });
      if (!fired) return;
    }
  }
}
