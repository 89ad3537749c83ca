import { Logger, run, type Runner } from 'graphile-worker';
import type pg from 'pg';
import type { LogFlushListener } from '../logs/LogWriter.js';
import { TASKS } from '../queue/queue.js';
import type { ContainerBackend } from '../runner/types.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import { archiveLogTask } from '../tasks/archive-log.js';
import { housekeepingTask } from '../tasks/housekeeping.js';
import { runExecutionTask } from '../tasks/run-execution.js';
import { LeaseKeeper } from './leases.js';
import type { RunnerServices } from './runnerRuntime.js';
import { Scheduler } from './scheduler.js';

export interface WorkerOptions {
  pool: pg.Pool;
  store: ArtifactStore;
  backend: ContainerBackend;
  workerId: string;
  concurrency: number;
  pollIntervalMs: number;
  defaultImage: string;
  leaseMs: number;
  misfireGraceMs: number;
  runAllMax: number;
  retryBaseMs: number;
  /** Container settings, cancel listener, secrets and artifacts (see startRunnerRuntime). */
  runner: RunnerServices;
  log: (message: string) => void;
  onLogFlush?: LogFlushListener;
}

/** A running worker role: the scheduler, the execution runner and housekeeping. */
export interface WorkerRole {
  scheduler: Scheduler;
  leases: LeaseKeeper;
  stop(): Promise<void>;
}

/** A comment line: graphile-worker reads a crontab file when given an empty string. */
const NO_CRONTAB = '# kiln schedules its jobs itself';
/** Housekeeping every minute; graphile-worker runs each cron tick once across all workers. */
const HOUSEKEEPING_CRONTAB = `* * * * * ${TASKS.housekeeping} ?max=1`;

function quietLogger(log: (m: string) => void): Logger {
  return new Logger(() => (level, message) => {
    // A busy job's run entry is retried by design (see JobBusyError); that is not an error.
    if ((level === 'error' || level === 'warning') && !message.includes('JobBusyError')) log(`queue ${level}: ${message}`);
  });
}

/**
 * Starts the worker role: the scheduler (which acts only while this process is the leader),
 * the execution runner with its lease keeper, and log archiving. Executions and housekeeping
 * run in separate graphile-worker runners, so long builds never hold back archiving.
 */
export async function startWorker(opts: WorkerOptions): Promise<WorkerRole> {
  const logger = quietLogger(opts.log);
  const common = { pgPool: opts.pool, noHandleSignals: true, pollInterval: opts.pollIntervalMs, crontab: NO_CRONTAB, logger };
  const leases = new LeaseKeeper(opts.pool, opts.leaseMs, opts.log);
  leases.start();
  const runners: Runner[] = [];
  runners.push(
    await run({
      ...common,
      concurrency: opts.concurrency,
      taskList: {
        [TASKS.runExecution]: runExecutionTask({
          pool: opts.pool, backend: opts.backend, workerId: opts.workerId, onLogFlush: opts.onLogFlush,
          leases, defaultImage: opts.defaultImage, retryBaseMs: opts.retryBaseMs, runner: opts.runner,
        }),
      },
    }),
  );
  const fire = { defaultImage: opts.defaultImage, graceMs: opts.misfireGraceMs, runAllMax: opts.runAllMax, maxTicks: 1000, batchSize: 500 };
  runners.push(
    await run({
      ...common,
      concurrency: 2,
      crontab: HOUSEKEEPING_CRONTAB,
      taskList: {
        [TASKS.archiveLog]: archiveLogTask(opts.pool, opts.store),
        [TASKS.housekeeping]: housekeepingTask(opts.pool, fire, opts.log),
      },
    }),
  );
  const scheduler = new Scheduler({
    pool: opts.pool, log: opts.log, ...fire,
    requeueEveryMs: Math.max(250, Math.min(1000, Math.floor(opts.leaseMs / 4))),
  });
  scheduler.start();
  return {
    scheduler,
    leases,
    async stop() {
      await scheduler.stop();
      await Promise.all(runners.map((r) => r.stop()));
      leases.stop();
    },
  };
}
