import { Logger } from 'graphile-worker';
import type pg from 'pg';
import type { LogFlushListener } from '../logs/LogWriter.js';
import { handBackNow } from './run/handBackNow.js';
import type { Log } from '../util/log.js';
import type { KilnMetrics } from '../ops/metrics.js';
import { settlesWithin } from '../util/timeout.js';
import { TASKS } from '../executions/queue.js';
import type { EngineGate } from '../runner/engineGate.js';
import type { ContainerBackend } from '../runner/types.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import { housekeepingTask } from '../tasks/housekeeping.js';
import { storeDeletionsTask } from '../tasks/store-deletions.js';
import { Archiver } from './archiver.js';
import { Dispatcher } from './dispatcher.js';
import { LeaseKeeper } from './leases.js';
import { startNotifySender, type NotifyRoleOptions } from './notifyRole.js';
import type { RunRegistry } from './run/RunRegistry.js';
import type { RunnerServices } from './run/RunDeps.js';
import { runClaimed } from './runExecution.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { SupervisedRunner } from './supervisedRunner.js';

export interface WorkerOptions {
  pool: pg.Pool;
  store: ArtifactStore;
  backend: ContainerBackend;
  workerId: string;
  concurrency: number;
  /** Most RUNNING executions per owner, cluster-wide (0: no cap). */
  maxRunningPerOwner: number;
  pollIntervalMs: number;
  defaultImage: string;
  leaseMs: number;
  misfireGraceMs: number;
  runAllMax: number;
  retryBaseMs: number;
  /** Ticks older than this are pruned by housekeeping (KILN_TICK_RETENTION); none: kept. */
  tickRetentionMs?: number;
  /** Container settings, cancel listener, secrets and artifacts (see startRunnerRuntime). */
  runner: RunnerServices;
  log: Log;
  onLogFlush?: LogFlushListener;
  /** Where the runner and the scheduler report (the process's registry); none in some tests. */
  metrics?: KilnMetrics;
  /**
   * The engine's state, started: executions are claimed only while it is up (housekeeping, archiving
   * and the scheduler go on regardless). None: always claimed.
   */
  gate?: EngineGate;
  /** Notification delivery (docs/design.md#notifications); none (some tests): this worker sends none. */
  notify?: NotifyRoleOptions;
}

/** A running worker role: the scheduler, the execution runner and housekeeping. */
export interface WorkerRole {
  scheduler: Scheduler;
  /** The runs this worker holds (see handBackNow). */
  runs: RunRegistry;
  /**
   * Stops taking work at once (the queue stops fetching, the scheduler resigns its leadership so a
   * follower takes over), lets running executions finish for `graceMs`, then stops the ones still
   * running and hands them back to the queue as their next attempt. Idempotent.
   */
  stop(opts?: { graceMs?: number }): Promise<void>;
}

/** A comment line: graphile-worker reads a crontab file when given an empty string. */
const NO_CRONTAB = '# kiln schedules its jobs itself';
/**
 * Housekeeping every minute; graphile-worker runs each cron tick once across all workers. Store
 * deletions run when a job is deleted too; the minute is their retry and second sweep.
 */
const HOUSEKEEPING_CRONTAB = `* * * * * ${TASKS.housekeeping} ?max=1\n* * * * * ${TASKS.storeDeletions} ?max=1`;

/** Without a grace period given, running executions get this long (the KILN_SHUTDOWN_GRACE_MS default). */
const DEFAULT_GRACE_MS = 30_000;
/** How long stopped executions get to destroy their containers, and other parts to stop, at shutdown. */
const STOP_WAIT_MS = 15_000;

/** How often archivers look for archives that are due (besides when a run of theirs finishes). */
const ARCHIVE_POLL_MS = 1000;

function quietLogger(log: Log): Logger {
  return new Logger(() => (level, message) => {
    if (level === 'error' || level === 'warning') {
      log(`queue ${level}: ${message}`, { level: level === 'error' ? 'error' : 'warn' });
    }
  });
}

/**
 * Starts the worker role: the scheduler (which acts only while this process is the leader),
 * the execution runner with its lease keeper, and log archiving. Executions and housekeeping
 * run in separate graphile-worker runners, so long builds never hold back archiving.
 */
export async function startWorker(opts: WorkerOptions): Promise<WorkerRole> {
  const logger = quietLogger(opts.log);
  const common = {
    pgPool: opts.pool, noHandleSignals: true, pollInterval: opts.pollIntervalMs, crontab: NO_CRONTAB, logger,
    // Unbatched, graphile-worker neither awaits nor retries (on a lost connection) the statement
    // that completes or fails a job: a Postgres restart or a cut link would crash the process with
    // an unhandled rejection. Batched (even with no delay), a failed completion shuts the worker
    // pool down instead (0.18 does not retry it), and SupervisedRunner starts it again.
    preset: { worker: { completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
  };
  const runs = opts.runner.runs;
  const leases = new LeaseKeeper(opts.pool, opts.leaseMs, runs, opts.log);
  leases.start();
  const archiver = new Archiver(opts.pool, opts.store, opts.log, ARCHIVE_POLL_MS);
  const runDeps = {
    pool: opts.pool, backend: opts.backend, workerId: opts.workerId, onLogFlush: opts.onLogFlush,
    leases, defaultImage: opts.defaultImage, retryBaseMs: opts.retryBaseMs, runner: opts.runner,
    log: opts.log, metrics: opts.metrics, gate: opts.gate,
  };
  const executions = new Dispatcher({
    pool: opts.pool, workerId: opts.workerId, concurrency: opts.concurrency, leaseMs: opts.leaseMs,
    ownerCap: opts.maxRunningPerOwner, pollIntervalMs: opts.pollIntervalMs, log: opts.log,
    run: (claimed, slotFree) => runClaimed(runDeps, claimed, slotFree).finally(() => archiver.wake()),
    canClaim: opts.gate ? () => opts.gate!.up : undefined,
  });
  // Claims again the moment the engine answers, not at the next poll.
  const unwatchEngine = opts.gate?.onChange((up) => void (up && executions.wake())) ?? (() => {});
  await executions.start();
  archiver.start();
  const notifier = opts.notify
    ? await startNotifySender({ pool: opts.pool, store: opts.store, secretBox: opts.runner.secretBox, workerId: opts.workerId, notify: opts.notify, log: opts.log })
    : null;
  const fire = { defaultImage: opts.defaultImage, graceMs: opts.misfireGraceMs, runAllMax: opts.runAllMax, maxTicks: 1000, batchSize: 500 };
  const housekeeping = await SupervisedRunner.start('housekeeping', {
    ...common,
    concurrency: 1,
    crontab: HOUSEKEEPING_CRONTAB,
    taskList: {
      [TASKS.housekeeping]: housekeepingTask(opts.pool, fire, opts.log, opts.tickRetentionMs ?? null),
      [TASKS.storeDeletions]: storeDeletionsTask(opts.pool, opts.store, opts.log),
    },
  }, opts.pool, opts.log);
  const scheduler = new Scheduler({
    pool: opts.pool, log: opts.log, ...fire,
    requeueEveryMs: Math.max(250, Math.min(1000, Math.floor(opts.leaseMs / 4))),
    onRequeued: (n) => opts.metrics?.executionsRequeued('lease_expired', n),
  });
  scheduler.start();
  opts.metrics?.watchLeader(() => scheduler.leader);
  opts.metrics?.watchRunning(() => runs.size);

  const drain = async (graceMs: number): Promise<void> => {
    const log = opts.log;
    unwatchEngine();
    // The dispatcher stops claiming at once and resolves when the runs in flight have ended;
    // runner.stop() likewise deactivates graphile-worker's pool and waits for its tasks.
    const stopped = (r: { stop(): Promise<void> }, what: string) => r.stop().catch((err: Error) => log(`shutdown: ${what}: ${err.message}`, { level: 'error', err }));
    const executionsStopped = stopped(executions, 'dispatcher');
    const housekeepingStopped = stopped(housekeeping, 'housekeeping runner');
    if (!(await settlesWithin(scheduler.stop(), STOP_WAIT_MS))) log('shutdown: the scheduler did not stop in time', { level: 'warn' });
    const running = runs.size;
    if (running > 0) log(`shutdown: waiting up to ${graceMs} ms for ${running} running execution(s)`, { workerId: opts.workerId });
    if (!(await settlesWithin(executionsStopped, graceMs))) {
      const reason = `worker ${opts.workerId} shut down before it finished (grace ${graceMs} ms)`;
      await handBackNow(runs, { pool: opts.pool, reason, log, metrics: opts.metrics });
      if (!(await settlesWithin(executionsStopped, STOP_WAIT_MS))) log('shutdown: the dispatcher did not stop in time', { level: 'warn' });
    }
    if (!(await settlesWithin(housekeepingStopped, STOP_WAIT_MS))) log('shutdown: the housekeeping runner did not stop in time', { level: 'warn' });
    if (!(await settlesWithin(archiver.stop(), STOP_WAIT_MS))) log('shutdown: the archiver did not stop in time', { level: 'warn' });
    if (notifier && !(await settlesWithin(notifier.stop(), STOP_WAIT_MS))) log('shutdown: the notification sender did not stop in time', { level: 'warn' });
    leases.stop();
  };
  let stopping: Promise<void> | null = null;
  return {
    scheduler,
    runs,
    stop(stopOpts = {}) {
      stopping ??= drain(stopOpts.graceMs ?? DEFAULT_GRACE_MS);
      return stopping;
    },
  };
}
