import { Logger, run, type Runner } from 'graphile-worker';
import type pg from 'pg';
import type { Orm } from '../db/orm.js';
import type { LogFlushListener } from '../logs/LogWriter.js';
import { TASKS } from '../queue/queue.js';
import type { ContainerBackend } from '../runner/types.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import { archiveLogTask } from '../tasks/archive-log.js';
import { runExecutionTask } from '../tasks/run-execution.js';
import { Scheduler } from './scheduler.js';

export interface WorkerOptions {
  orm: Orm;
  pool: pg.Pool;
  store: ArtifactStore;
  backend: ContainerBackend;
  workerId: string;
  concurrency: number;
  pollIntervalMs: number;
  defaultImage: string;
  log: (message: string) => void;
  onLogFlush?: LogFlushListener;
}

/** A running worker role: the scheduler, the execution runner and housekeeping. */
export interface WorkerRole {
  scheduler: Scheduler;
  stop(): Promise<void>;
}

/** A comment line: graphile-worker reads a crontab file when given an empty string. */
const NO_CRONTAB = '# kiln schedules its jobs itself';

function quietLogger(log: (m: string) => void): Logger {
  return new Logger(() => (level, message) => {
    if (level === 'error' || level === 'warning') log(`queue ${level}: ${message}`);
  });
}

/**
 * Starts the worker role. Executions and housekeeping run in separate graphile-worker runners,
 * so long builds never hold back log archiving.
 */
export async function startWorker(opts: WorkerOptions): Promise<WorkerRole> {
  const logger = quietLogger(opts.log);
  const common = { pgPool: opts.pool, noHandleSignals: true, pollInterval: opts.pollIntervalMs, crontab: NO_CRONTAB, logger };
  const runners: Runner[] = [];
  runners.push(
    await run({
      ...common,
      concurrency: opts.concurrency,
      taskList: {
        [TASKS.runExecution]: runExecutionTask({ pool: opts.pool, backend: opts.backend, workerId: opts.workerId, onLogFlush: opts.onLogFlush }),
      },
    }),
  );
  runners.push(
    await run({ ...common, concurrency: 2, taskList: { [TASKS.archiveLog]: archiveLogTask(opts.pool, opts.store) } }),
  );
  const scheduler = new Scheduler({ orm: opts.orm, pool: opts.pool, defaultImage: opts.defaultImage, log: opts.log });
  scheduler.start();
  return {
    scheduler,
    async stop() {
      await scheduler.stop();
      await Promise.all(runners.map((r) => r.stop()));
    },
  };
}
