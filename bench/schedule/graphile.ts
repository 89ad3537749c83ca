import { Logger, makeWorkerUtils, run, runMigrations, type TaskList, type WorkerUtils } from 'graphile-worker';
import type pg from 'pg';
import { benchPool, createDatabase, countFromHere } from '../lib/pg.js';
import { Probe, waitsLine } from '../lib/probe.js';
import { load1, nextSecond, sleep } from '../lib/stats.js';
import {
  planWindow, Samples, secondDriver, secondOfMinute, spreadCountAt, spreadExpected,
  type HerdOptions, type HerdRun, type LatenessOptions, type LatenessRun, type ThroughputOptions, type ThroughputRun, type Window,
} from './common.js';

/**
 * Raw graphile-worker, the queue Kiln is built on: a noop task, nothing else. Its own crontab
 * has minute granularity, so a per-second "schedule" here is what a thin scheduler on top of it
 * would do: at each fire time, `addJobs` one job per schedule with run_at = the fire time; the
 * insert's NOTIFY wakes the workers. Lateness = the task's start - the fire time. The spread
 * (once a minute at second s) and the herd (all due at one instant) go through the same thin
 * scheduler.
 */

async function withGraphile<T>(
  label: string,
  o: { concurrency: number; pollMs: number },
  taskList: TaskList,
  fn: (utils: WorkerUtils, pool: pg.Pool, errors: string[], dbName: string) => Promise<T>,
): Promise<T> {
  const db = await createDatabase(label);
  const pool = benchPool(db.url, o.concurrency + 6);
  const errors: string[] = [];
  const logger = new Logger(() => (level, message) => {
    if (level === 'error' || level === 'warning') errors.push(message);
  });
  try {
    await runMigrations({ pgPool: pool, logger });
    const runner = await run({ pgPool: pool, concurrency: o.concurrency, pollInterval: o.pollMs, taskList, crontab: '# none', noHandleSignals: true, logger });
    const utils = await makeWorkerUtils({ pgPool: pool, logger });
    try {
      return await fn(utils, pool, errors, db.name);
    } finally {
      await runner.stop();
      await utils.release();
    }
  } finally {
    await pool.end();
    await db.drop();
  }
}

const errorLine = (errors: string[]) => (errors.length ? [`graphile-worker logged ${errors.length} warning/error(s), first: ${errors[0]!.slice(0, 160)}`] : []);

/** Per-second schedules: at each fire time, one job per schedule. */
export function graphileLateness(o: LatenessOptions): Promise<LatenessRun> {
  return graphileFires('gw_late', o, () => o.schedules, (w) => o.schedules * ((w.end - w.start) / 1000));
}

/** The spread: at each fire time, one job per schedule whose second of the minute it is. */
export function graphileSpread(o: LatenessOptions): Promise<LatenessRun> {
  return graphileFires('gw_spread', o, (t) => spreadCountAt(o.schedules, secondOfMinute(t)), (w) => spreadExpected(o.schedules, w));
}

/** A thin scheduler on graphile-worker: at each whole second t, addJobs(`countAt(t)` jobs, run_at = t). */
async function graphileFires(label: string, o: LatenessOptions, countAt: (t: number) => number, expectedIn: (w: Window) => number): Promise<LatenessRun> {
  let samples: Samples | null = null;
  const taskList: TaskList = {
    noop: async (payload) => samples?.add((payload as { at: number }).at, Date.now()),
  };
  return withGraphile(label, o, taskList, async (utils, _pool, errors) => {
    const first = Math.ceil((Date.now() + 500) / 1000) * 1000;
    const w = planWindow(first, o);
    samples = new Samples(w);
    let addMsMax = 0;
    let addMax = 0;
    const driver = secondDriver(first, w.end, 0, async (t) => {
      const started = Date.now();
      const specs = Array.from({ length: countAt(t) }, () => ({ identifier: 'noop', payload: { at: t }, runAt: new Date(t) }));
      for (let i = 0; i < specs.length; i += 5000) await utils.addJobs(specs.slice(i, i + 5000));
      addMsMax = Math.max(addMsMax, Date.now() - started);
      addMax = Math.max(addMax, specs.length);
    });
    await driver.done;
    const expected = expectedIn(w);
    await samples.drain(expected, w.end + o.drainMs);
    return {
      system: 'graphile-worker',
      schedules: o.schedules,
      expected,
      samples: [...samples.values],
      load: load1(),
      detail: [`slowest per-second addJobs (up to ${addMax} job(s)): ${addMsMax} ms`, ...errorLine(errors)],
    };
  });
}

/**
 * The herd: at the instant, addJobs(`jobs` noop jobs, run_at = the instant), as the thin
 * scheduler above would; the time from the instant to each task's start.
 */
export async function graphileHerd(o: HerdOptions): Promise<HerdRun> {
  let at = 0;
  const starts: number[] = [];
  const taskList: TaskList = { noop: async () => void starts.push(Date.now() - at) };
  return withGraphile('gw_herd', o, taskList, async (utils, _pool, errors) => {
    at = nextSecond(Date.now() + o.leadMs);
    await sleep(at - Date.now());
    const specs = Array.from({ length: o.jobs }, (_, i) => ({ identifier: 'noop', payload: { i }, runAt: new Date(at) }));
    for (let i = 0; i < specs.length; i += 5000) await utils.addJobs(specs.slice(i, i + 5000));
    const addMs = Date.now() - at;
    while (starts.length < o.jobs && Date.now() < at + o.timeoutMs) await sleep(50);
    return {
      system: 'graphile-worker',
      jobs: o.jobs,
      at,
      samples: [...starts],
      fired: o.jobs,
      load: load1(),
      detail: [`addJobs of the ${o.jobs} jobs at the instant took ${addMs} ms`, ...errorLine(errors)],
    };
  });
}

/**
 * `jobs` noop jobs added in one `addJobs` call; the time until graphile-worker has completed
 * (deleted) all of them. `queuePerJob` gives each job its own queue_name, as Kiln does (one
 * queue per Kiln job, so a job's executions run one at a time).
 */
export async function graphileThroughput(o: ThroughputOptions, queuePerJob = false): Promise<ThroughputRun> {
  let ran = 0;
  const taskList: TaskList = { noop: async () => void ran++ };
  return withGraphile(queuePerJob ? 'gw_tpq' : 'gw_tp', o, taskList, async (utils, pool, errors, dbName) => {
    await sleep(500);
    let polls = 0;
    const probe = await Probe.start(dbName);
    const counted = countFromHere();
    const t0 = Date.now();
    const specs = Array.from({ length: o.jobs }, (_, i) => ({ identifier: 'noop', payload: { i }, ...(queuePerJob ? { queueName: `q:${i}` } : {}) }));
    await utils.addJobs(specs);
    let left = o.jobs;
    while (Date.now() - t0 < o.timeoutMs) {
      polls++;
      left = (await pool.query<{ n: number }>(`select count(*)::int as n from graphile_worker.jobs`)).rows[0]!.n;
      if (left === 0) break;
      await sleep(50);
    }
    const seconds = (Date.now() - t0) / 1000;
    const stmts = counted(polls);
    const usage = await probe.stop();
    const done = o.jobs - left;
    return {
      system: queuePerJob ? 'graphile-worker, queue_name per job' : 'graphile-worker',
      jobs: done,
      seconds,
      perSecond: done / seconds,
      statementsPerJob: stmts.statements / Math.max(1, done),
      transactionsPerJob: stmts.transactions / Math.max(1, done),
      nodeCpuMsPerJob: usage.nodeCpuMs / Math.max(1, done),
      serverCpuMsPerJob: usage.serverCpuMs / Math.max(1, done),
      history: 'none (a finished job is deleted)',
      load: load1(),
      error: left > 0 ? `${left} of ${o.jobs} jobs left after ${o.timeoutMs / 1000} s` : undefined,
      detail: [`tasks run: ${ran}; Postgres backends: ${waitsLine(usage.waits)}`, ...errorLine(errors)],
    };
  });
}
