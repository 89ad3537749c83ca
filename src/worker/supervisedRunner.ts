import { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { run, type Runner, type RunnerOptions, type WorkerEvents } from 'graphile-worker';
import type pg from 'pg';
import type { Log } from '../util/log.js';

/** Restart back-off: 0.5 s doubling to 10 s while Postgres is unreachable. */
const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 10_000;

/**
 * A graphile-worker runner that is started again when it stops by itself.
 *
 * graphile-worker 0.18 shuts its worker pool down for good when completing or failing a job
 * fails, e.g. because Postgres restarted at that moment ("queue is in an inconsistent state;
 * aborting"): the process would live on without taking any work. Here the stopped runner's
 * pool ids are force-unlocked (the entries and queues it still had locked: its tasks have
 * returned, since the pool shut down gracefully, so they were only waiting for a completion
 * that failed; a run entry whose execution ended is then found 'gone' by its claim, an archive
 * is idempotent) and a new runner is started, with back-off while Postgres is unreachable.
 */
export class SupervisedRunner {
  private runner: Runner | null = null;
  private settled = true;
  private stopping = false;
  private restarting: Promise<void> | null = null;

  private constructor(
    private readonly name: string,
    private readonly options: RunnerOptions,
    private readonly pool: pg.Pool,
    private readonly log: Log,
  ) {}

  static async start(name: string, options: RunnerOptions, pool: pg.Pool, log: Log): Promise<SupervisedRunner> {
    const s = new SupervisedRunner(name, options, pool, log);
    await s.launch();
    return s;
  }

  private async launch(): Promise<void> {
    const events = new EventEmitter() as WorkerEvents;
    const poolIds: string[] = [];
    events.on('pool:create', ({ workerPool }) => void poolIds.push(workerPool.id));
    const runner = await run({ ...this.options, events });
    this.runner = runner;
    this.settled = false;
    const exited = (err: unknown) => {
      if (runner !== this.runner) return;
      this.settled = true;
      if (this.stopping) return;
      const why = err instanceof Error ? err.message : 'it exited';
      this.log(`queue: the ${this.name} runner stopped by itself (${why}); starting it again`, { level: 'error' });
      this.restarting = this.restart(poolIds).finally(() => (this.restarting = null));
    };
    runner.promise.then(() => exited(null), exited);
  }

  private async restart(deadPoolIds: string[]): Promise<void> {
    for (let attempt = 0; !this.stopping; attempt++) {
      await delay(Math.min(RESTART_MIN_MS * 2 ** attempt, RESTART_MAX_MS));
      if (this.stopping) return;
      try {
        if (deadPoolIds.length > 0) {
          await this.pool.query('select graphile_worker.force_unlock_workers($1::text[])', [deadPoolIds]);
          deadPoolIds = [];
        }
        await this.launch();
        this.log(`queue: the ${this.name} runner is running again`, { level: 'warn' });
        return;
      } catch (err) {
        this.log(`queue: starting the ${this.name} runner again failed (${(err as Error).message}); retrying`, { level: 'warn' });
      }
    }
  }

  /** Stops taking work and resolves once the tasks in flight have returned (graphile-worker's stop). */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.restarting;
    if (this.runner && !this.settled) await this.runner.stop();
  }
}
