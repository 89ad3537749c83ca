import perfHooks from 'node:perf_hooks';
import type pg from 'pg';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { OPS_QUERY_TIMEOUT_MS } from './opsPool.js';
import type { FinalStatus } from '../entities/enums.js';
import { settlesWithin } from '../util/timeout.js';

/** Every Kiln metric name starts with this. */
export const METRIC_PREFIX = 'kiln_';

/** Seconds from a second to two hours: builds. */
const DURATION_BUCKETS = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];
/** Milliseconds to minutes: the scheduler promises sub-second lateness. */
const LATENESS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** How long a scrape waits for the database gauges before it answers without them. */
const DB_GAUGE_TIMEOUT_MS = 2000;

/** How long one reading of the database gauges serves later scrapes: a loop of scrapes costs a query per 5 s. */
export const DB_GAUGE_CACHE_MS = 5000;

/**
 * prom-client's default metrics (process, heap, event loop, GC) in `register`, and a function that
 * stops what they keep running. prom-client returns no handle on the event-loop delay monitor and
 * the GC PerformanceObserver it starts, and never stops them: they are caught as prom-client
 * creates them (its `perf_hooks` is the module object imported here; the replacement lasts only
 * for this synchronous call), then disabled and disconnected by the returned function.
 */
export function collectStoppableDefaultMetrics(register: Registry, prefix: string): { stop: () => void; monitors: number } {
  const histograms: Array<{ disable(): boolean }> = [];
  const observers: Array<{ disconnect(): void }> = [];
  const { monitorEventLoopDelay, PerformanceObserver } = perfHooks;
  perfHooks.monitorEventLoopDelay = (options) => {
    const h = monitorEventLoopDelay(options);
    histograms.push(h);
    return h;
  };
  perfHooks.PerformanceObserver = class extends PerformanceObserver {
    constructor(callback: ConstructorParameters<typeof PerformanceObserver>[0]) {
      super(callback);
      observers.push(this);
    }
  };
  try {
    collectDefaultMetrics({ register, prefix });
  } finally {
    perfHooks.monitorEventLoopDelay = monitorEventLoopDelay;
    perfHooks.PerformanceObserver = PerformanceObserver;
  }
  return {
    monitors: histograms.length + observers.length,
    stop: () => {
      for (const h of histograms.splice(0)) h.disable();
      for (const o of observers.splice(0)) o.disconnect();
    },
  };
}

/**
 * A label-less gauge whose one series is left out of the scrape (rather than shown as 0, which
 * prom-client's reset() does) while its value is unknown: `collect` calls `unknown()` or `setKnown()`.
 */
class OptionalGauge extends Gauge {
  private known = false;

  /** The value is known: the series shows it. */
  setKnown(value: number): void {
    this.known = true;
    this.set(value);
  }

  /** The value is unknown: the series is left out. */
  unknown(): void {
    this.known = false;
    this.reset();
  }

  override async get() {
    const metric = await super.get();
    return this.known ? metric : { ...metric, values: [] };
  }
}

/**
 * What the runner reports about the executions it runs (see ExecutionRun). Optional everywhere:
 * code and tests that run executions without a Kiln process simply pass none.
 */
export interface RunMetrics {
  /** Scheduled fire time -> RUNNING, for the first attempt of a SCHEDULE execution. */
  fireLateness(seconds: number): void;
  /** Claimed -> final status recorded, in this worker. */
  executionFinished(status: FinalStatus, seconds: number): void;
  stepFinished(status: 'SUCCEEDED' | 'FAILED', seconds: number): void;
  /** UTF-8 bytes of log lines durably stored (see LogWriter). */
  logBytes(bytes: number): void;
  /** Executions this worker handed to a next attempt because the infrastructure broke their runs. */
  executionsRequeued?(reason: 'infrastructure', count: number): void;
}

/**
 * One Kiln process's metrics, in a registry of its own (never prom-client's global one), so that
 * several Kilns in one process (the tests) neither collide nor share counts.
 *
 * Counters and histograms count what this process did. The `kiln_queue_depth` and
 * `kiln_executions_running` gauges are read from Postgres (see watchDatabase) and are the same in
 * every process: aggregate them with max(), not sum(). close() when the process stops.
 */
export class KilnMetrics implements RunMetrics {
  readonly registry = new Registry();
  private readonly finished: Counter<'status'>;
  private readonly executionDuration: Histogram<'status'>;
  private readonly stepDuration: Histogram<'status'>;
  private readonly lateness: Histogram;
  private readonly logBytesTotal: Counter;
  private readonly requeued: Counter<'reason'>;
  private leader: () => boolean = () => false;
  private runningHereNow: () => number = () => 0;
  private stopDefaultMetrics: () => void = () => {};

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics ?? true) this.stopDefaultMetrics = collectStoppableDefaultMetrics(this.registry, METRIC_PREFIX).stop;
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
      help: 'Executions this process handed to a next attempt: lease_expired (by the scheduler leader), shutdown (its own, at the end of the shutdown grace) or infrastructure (its own, broken by the engine or Postgres).',
      labelNames: ['reason'],
      registers,
    });
    const self = this;
    // Registered in this.registry, which keeps them; collect() reads the watched callbacks.
    new Gauge({
      name: 'kiln_scheduler_leader',
      help: '1 while this process holds the scheduler leader lock, else 0.',
      registers,
      collect() {
        this.set(self.leader() ? 1 : 0);
      },
    });
    new Gauge({
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
   *
   * - One query at a time: scrapes that come while it runs join it, until it settles (a hung query
   *   is never started again meanwhile); give it the ops pool (createOpsPool), whose one connection
   *   and timeouts keep scrapes off the connections that renew leases.
   * - A reading serves the scrapes of the next `cacheMs` (DB_GAUGE_CACHE_MS): a loop of scrapes
   *   cannot load Postgres.
   * - A scrape waits at most DB_GAUGE_TIMEOUT_MS for it. Without a reading (Postgres down or slow)
   *   `kiln_queue_depth` and `kiln_executions_running` are left out of the scrape (not 0, which
   *   would read as an empty queue) and `kiln_database_up` is 0.
   */
  watchDatabase(pool: pg.Pool, opts: { cacheMs?: number; timeoutMs?: number } = {}): void {
    const cacheMs = opts.cacheMs ?? DB_GAUGE_CACHE_MS;
    const timeoutMs = opts.timeoutMs ?? DB_GAUGE_TIMEOUT_MS;
    type Reading = { queued: number; running: number } | null;
    let inFlight: Promise<Reading> | null = null;
    let last: { reading: Reading; at: number } | null = null;
    const query = async (): Promise<Reading> => {
      try {
        const { rows } = await pool.query<{ queued: string; running: string }>({
          text: `select count(*) filter (where status = 'QUEUED') as queued, count(*) filter (where status = 'RUNNING') as running
                   from executions where status in ('QUEUED', 'RUNNING')`,
          query_timeout: OPS_QUERY_TIMEOUT_MS,
        } as pg.QueryConfig);
        return { queued: Number(rows[0]!.queued), running: Number(rows[0]!.running) };
      } catch {
        return null;
      }
    };
    // The reading of a scrape: the cached one, the one in flight, or a new one. The three gauges
    // collect at the same scrape: they share the query in flight.
    const reading = async (): Promise<Reading> => {
      if (last !== null && Date.now() - last.at < cacheMs) return last.reading;
      if (inFlight === null) {
        const started = query();
        inFlight = started;
        void started.then((reading) => {
          last = { reading, at: Date.now() };
          inFlight = null;
        });
      }
      const pending = inFlight;
      return (await settlesWithin(pending, timeoutMs)) ? pending : null;
    };
    const registers = [this.registry];
    const gauge = (name: string, help: string, value: (r: NonNullable<Reading>) => number): void => {
      const g: OptionalGauge = new OptionalGauge({
        name,
        help,
        registers,
        async collect() {
          const r = await reading();
          if (r === null) g.unknown();
          else g.setKnown(value(r));
        },
      });
    };
    gauge('kiln_queue_depth', 'Executions QUEUED (waiting for a worker, including retries whose backoff has not elapsed), from Postgres (read at most every 5 s); absent while Postgres does not answer.', (r) => r.queued);
    gauge('kiln_executions_running', 'Executions RUNNING on any worker, from Postgres (read at most every 5 s); absent while Postgres does not answer.', (r) => r.running);
    new Gauge({
      name: 'kiln_database_up',
      help: '1 when the last reading of the Postgres gauges succeeded within its limit, else 0.',
      registers,
      async collect() {
        this.set((await reading()) === null ? 0 : 1);
      },
    });
  }

  fireLateness(seconds: number): void {
    this.lateness.observe(Math.max(0, seconds));
  }

  executionFinished(status: FinalStatus, seconds: number): void {
    this.finished.inc({ status });
    this.executionDuration.observe({ status }, seconds);
  }

  stepFinished(status: 'SUCCEEDED' | 'FAILED', seconds: number): void {
    this.stepDuration.observe({ status }, seconds);
  }

  logBytes(bytes: number): void {
    if (bytes > 0) this.logBytesTotal.inc(bytes);
  }

  executionsRequeued(reason: 'lease_expired' | 'shutdown' | 'infrastructure', count: number): void {
    if (count > 0) this.requeued.inc({ reason }, count);
  }

  /**
   * Stops the default metrics' event-loop and GC monitors and empties the registry (the process
   * stopping, or a test's Kiln). Idempotent; a render afterwards shows nothing.
   */
  close(): void {
    this.stopDefaultMetrics();
    this.stopDefaultMetrics = () => {};
    this.registry.clear();
  }

  /** The Prometheus text exposition and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
