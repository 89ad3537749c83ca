import type pg from 'pg';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { withTimeout } from './timeout.js';

/** Every Kiln metric name starts with this. */
export const METRIC_PREFIX = 'kiln_';

/** Final statuses an execution run by a worker ends with. */
export type FinishedStatus = 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'TIMED_OUT';

/** Seconds from a second to two hours: builds. */
const DURATION_BUCKETS = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];
/** Milliseconds to minutes: the scheduler promises sub-second lateness. */
const LATENESS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** How long a scrape waits for the database gauges before it answers without them. */
const DB_GAUGE_TIMEOUT_MS = 2000;

/**
 * What the runner reports about the executions it runs (see runExecution). Optional everywhere:
 * code and tests that run executions without a Kiln process simply pass none.
 */
export interface RunMetrics {
  /** Scheduled fire time -> RUNNING, for the first attempt of a SCHEDULE execution. */
  fireLateness(seconds: number): void;
  /** Claimed -> final status recorded, in this worker. */
  executionFinished(status: FinishedStatus, seconds: number): void;
  stepFinished(status: 'SUCCEEDED' | 'FAILED', seconds: number): void;
  /** UTF-8 bytes of log lines durably stored (see LogWriter). */
  logBytes(bytes: number): void;
}

/**
 * One Kiln process's metrics, in a registry of its own (never prom-client's global one), so that
 * several Kilns in one process (the tests) neither collide nor share counts.
 *
 * Counters and histograms count what this process did. The `kiln_queue_depth` and
 * `kiln_executions_running` gauges are read from Postgres at each scrape and are the same in every
 * process: aggregate them with max(), not sum().
 */
export class KilnMetrics implements RunMetrics {
  readonly registry = new Registry();
  private readonly finished: Counter<'status'>;
  private readonly executionDuration: Histogram<'status'>;
  private readonly stepDuration: Histogram<'status'>;
  private readonly lateness: Histogram;
  private readonly logBytesTotal: Counter;
  private readonly requeued: Counter<'reason'>;
  private readonly leaderGauge: Gauge;
  private readonly runningHere: Gauge;
  private leader: () => boolean = () => false;
  private runningHereNow: () => number = () => 0;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
    this.finished = new Counter({
      name: 'kiln_executions_finished_total',
      help: 'Executions this process ran to a final status, by status.',
      labelNames: ['status'],
      registers,
    });
    this.executionDuration = new Histogram({
      name: 'kiln_execution_duration_seconds',
      help: 'Run time of executions this process finished (claimed -> final status), by final status.',
      labelNames: ['status'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.stepDuration = new Histogram({
      name: 'kiln_step_duration_seconds',
      help: 'Run time of steps that ran to an exit code in this process, by status (SUCCEEDED: exit 0).',
      labelNames: ['status'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.lateness = new Histogram({
      name: 'kiln_fire_lateness_seconds',
      help: 'Scheduled fire time -> RUNNING of first attempts of scheduled executions started by this process.',
      buckets: LATENESS_BUCKETS,
      registers,
    });
    this.logBytesTotal = new Counter({
      name: 'kiln_log_bytes_total',
      help: 'UTF-8 bytes of execution log lines this process stored in Postgres.',
      registers,
    });
    this.requeued = new Counter({
      name: 'kiln_executions_requeued_total',
      help: 'Executions this process handed to a next attempt: lease_expired (by the scheduler leader) or shutdown (its own, at the end of the shutdown grace).',
      labelNames: ['reason'],
      registers,
    });
    const self = this;
    this.leaderGauge = new Gauge({
      name: 'kiln_scheduler_leader',
      help: '1 while this process holds the scheduler leader lock, else 0.',
      registers,
      collect() {
        this.set(self.leader() ? 1 : 0);
      },
    });
    this.runningHere = new Gauge({
      name: 'kiln_worker_executions_running',
      help: 'Executions running in this worker process now.',
      registers,
      collect() {
        this.set(self.runningHereNow());
      },
    });
  }

  /** Reports the leadership of this process's scheduler (worker role). */
  watchLeader(isLeader: () => boolean): void {
    this.leader = isLeader;
  }

  /** Reports how many executions this worker process runs now. */
  watchRunning(count: () => number): void {
    this.runningHereNow = count;
  }

  /**
   * Adds the gauges read from Postgres at scrape time. Both come from one query on the partial
   * index of active executions (`executions_active_index`), cheap whatever the history's size.
   * A scrape never waits more than DB_GAUGE_TIMEOUT_MS for them: with Postgres down they are
   * left out and the process metrics still answer.
   */
  watchDatabase(pool: pg.Pool): void {
    let pending: Promise<{ queued: number; running: number } | null> | null = null;
    // Both gauges collect at the same scrape: one query serves them (coalesced while in flight).
    const read = () => {
      pending ??= withTimeout(
        pool.query<{ queued: string; running: string }>(
          `select count(*) filter (where status = 'QUEUED') as queued, count(*) filter (where status = 'RUNNING') as running
             from executions where status in ('QUEUED', 'RUNNING')`,
        ),
        DB_GAUGE_TIMEOUT_MS,
        'metrics query',
      )
        .then(({ rows }) => ({ queued: Number(rows[0]!.queued), running: Number(rows[0]!.running) }))
        .catch(() => null)
        .finally(() => setTimeout(() => (pending = null), 0).unref());
      return pending;
    };
    const registers = [this.registry];
    new Gauge({
      name: 'kiln_queue_depth',
      help: 'Executions QUEUED (waiting for a worker, including retries whose backoff has not elapsed), from Postgres at scrape time.',
      registers,
      async collect() {
        const r = await read();
        if (r === null) this.reset();
        else this.set(r.queued);
      },
    });
    new Gauge({
      name: 'kiln_executions_running',
      help: 'Executions RUNNING on any worker, from Postgres at scrape time.',
      registers,
      async collect() {
        const r = await read();
        if (r === null) this.reset();
        else this.set(r.running);
      },
    });
  }

  fireLateness(seconds: number): void {
    this.lateness.observe(Math.max(0, seconds));
  }

  executionFinished(status: FinishedStatus, seconds: number): void {
    this.finished.inc({ status });
    this.executionDuration.observe({ status }, seconds);
  }

  stepFinished(status: 'SUCCEEDED' | 'FAILED', seconds: number): void {
    this.stepDuration.observe({ status }, seconds);
  }

  logBytes(bytes: number): void {
    if (bytes > 0) this.logBytesTotal.inc(bytes);
  }

  executionsRequeued(reason: 'lease_expired' | 'shutdown', count: number): void {
    if (count > 0) this.requeued.inc({ reason }, count);
  }

  /** The Prometheus text exposition and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
