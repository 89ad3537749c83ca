import { PgBoss } from 'pg-boss';
import { createDatabase, countFromHere } from '../lib/pg.js';
import { Probe, waitsLine } from '../lib/probe.js';
import { load1, nextSecond, sleep } from '../lib/stats.js';
import {
  planWindow, Samples, secondDriver, secondOfMinute, spreadCountAt, spreadExpected,
  type HerdOptions, type HerdRun, type LatenessOptions, type LatenessRun, type ThroughputOptions, type ThroughputRun, type Window,
} from './common.js';

/**
 * pg-boss. Its scheduler (`schedule()`) matches cron occurrences per minute, in a pass every
 * `cronMonitorIntervalSeconds` (30 s by default): it cannot express a per-second schedule. What
 * it offers below a minute is the delayed job: `startAfter`. So each "schedule" here is a job per
 * second sent 2 s ahead with startAfter = the fire time (what a per-second scheduler on pg-boss
 * would do), and lateness = the handler's start - startAfter. Workers find a job whose startAfter
 * has come only by polling (no NOTIFY fires then): `pollingIntervalSeconds` at its minimum, 0.5.
 * "Once a minute at second s" (the spread) is beyond schedule() for the same reason, so it gets
 * the same treatment with only that second's jobs; the herd is startAfter jobs due at one instant.
 */

export const PGBOSS_LIMITS = 'pg-boss schedule() is cron with minute granularity; per-second figures use startAfter jobs found by polling (>= 0.5 s)';

/** Sends happen this long before the fire time. */
const LEAD_MS = 2000;

async function withBoss<T>(label: string, max: number, fn: (boss: PgBoss, db: { url: string; name: string }, errors: string[]) => Promise<T>): Promise<T> {
  const db = await createDatabase(label);
  const errors: string[] = [];
  const boss = new PgBoss({ connectionString: db.url, max, schedule: false, useListenNotify: true });
  boss.on('error', (err: Error) => errors.push(err.message));
  try {
    await boss.start();
    return await fn(boss, db, errors);
  } finally {
    await boss.stop({ graceful: true, timeout: 10_000, close: true }).catch((err: Error) => console.error(`pg-boss stop: ${err.message}`));
    await db.drop();
  }
}

const errorLine = (errors: string[]) => (errors.length ? [`pg-boss emitted ${errors.length} error(s), first: ${errors[0]!.slice(0, 160)}`] : []);

type BossLateness = LatenessOptions & { batchSize: number };

const workOptions = (o: { concurrency: number; batchSize: number }) => ({
  localConcurrency: o.concurrency, batchSize: o.batchSize, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5, burstWhenBatchFull: o.batchSize > 1,
});

/** Per-second schedules: for each fire time, one delayed job per schedule. */
export function pgbossLateness(o: BossLateness): Promise<LatenessRun> {
  return pgbossFires('pgboss_late', o, () => o.schedules, (w) => o.schedules * ((w.end - w.start) / 1000));
}

/**
 * The spread: for each fire time, one delayed job per schedule whose second of the minute it is.
 * (schedule() would express "once a minute at second s" only as "once a minute", at the minute.)
 */
export function pgbossSpread(o: BossLateness): Promise<LatenessRun> {
  return pgbossFires('pgboss_spread', o, (t) => spreadCountAt(o.schedules, secondOfMinute(t)), (w) => spreadExpected(o.schedules, w));
}

/** For each whole second t, `countAt(t)` jobs sent LEAD_MS ahead with startAfter = t. */
async function pgbossFires(label: string, o: BossLateness, countAt: (t: number) => number, expectedIn: (w: Window) => number): Promise<LatenessRun> {
  return withBoss(label, o.concurrency + 6, async (boss, _db, errors) => {
    const queue = 'late';
    await boss.createQueue(queue);
    const first = Math.ceil((Date.now() + LEAD_MS + 500) / 1000) * 1000;
    const w = planWindow(first, o);
    const samples = new Samples(w);
    await boss.work<{ at: number }>(queue, workOptions(o), async (jobs) => {
      const now = Date.now();
      for (const job of jobs) samples.add(job.data.at, now);
    });
    let sendMsMax = 0;
    let sendMax = 0;
    const driver = secondDriver(first, w.end, LEAD_MS, async (t) => {
      const started = Date.now();
      const jobs = Array.from({ length: countAt(t) }, () => ({ data: { at: t }, startAfter: new Date(t) }));
      for (let i = 0; i < jobs.length; i += 5000) await boss.insert(queue, jobs.slice(i, i + 5000));
      sendMsMax = Math.max(sendMsMax, Date.now() - started);
      sendMax = Math.max(sendMax, jobs.length);
    });
    await driver.done;
    const expected = expectedIn(w);
    await samples.drain(expected, w.end + o.drainMs);
    return {
      system: 'pg-boss',
      schedules: o.schedules,
      expected,
      samples: [...samples.values],
      load: load1(),
      detail: [`slowest insert of one second's job(s) (up to ${sendMax}): ${sendMsMax} ms (sent ${LEAD_MS} ms ahead)`, ...errorLine(errors)],
    };
  });
}

/** The herd: `jobs` jobs sent LEAD_MS ahead with startAfter = the instant; the time from it to each handler's start. */
export async function pgbossHerd(o: HerdOptions & { batchSize: number }): Promise<HerdRun> {
  return withBoss('pgboss_herd', o.concurrency + 6, async (boss, _db, errors) => {
    const queue = 'herd';
    await boss.createQueue(queue);
    const at = nextSecond(Date.now() + Math.max(o.leadMs, LEAD_MS + 500));
    const starts: number[] = [];
    await boss.work(queue, workOptions(o), async (jobs) => {
      const now = Date.now();
      for (let i = 0; i < jobs.length; i++) starts.push(now - at);
    });
    await sleep(at - LEAD_MS - Date.now());
    const t0 = Date.now();
    const jobs = Array.from({ length: o.jobs }, (_, i) => ({ data: { i }, startAfter: new Date(at) }));
    for (let i = 0; i < jobs.length; i += 5000) await boss.insert(queue, jobs.slice(i, i + 5000));
    const sendMs = Date.now() - t0;
    while (starts.length < o.jobs && Date.now() < at + o.timeoutMs) await sleep(50);
    return {
      system: 'pg-boss',
      jobs: o.jobs,
      at,
      samples: [...starts],
      fired: o.jobs,
      load: load1(),
      detail: [`inserting the ${o.jobs} jobs took ${sendMs} ms, ${LEAD_MS} ms ahead of the instant; batchSize ${o.batchSize}`, ...errorLine(errors)],
    };
  });
}

/** `jobs` jobs inserted at once into a NOTIFY-enabled queue; the time until all are completed. */
export async function pgbossThroughput(o: ThroughputOptions & { batchSize: number }): Promise<ThroughputRun> {
  return withBoss('pgboss_tp', o.concurrency + 6, async (boss, db, errors) => {
    const queue = 'tp';
    await boss.createQueue(queue, { notify: true });
    let ran = 0;
    await boss.work(queue, workOptions(o), async (jobs) => void (ran += jobs.length));
    await sleep(500);
    let polls = 0;
    const probe = await Probe.start(db.name);
    const counted = countFromHere();
    const t0 = Date.now();
    const jobs = Array.from({ length: o.jobs }, (_, i) => ({ data: { i } }));
    for (let i = 0; i < jobs.length; i += 5000) await boss.insert(queue, jobs.slice(i, i + 5000));
    let done = 0;
    // Completion is read from pg-boss's own counts (completed jobs stay in its table: history).
    while (Date.now() - t0 < o.timeoutMs) {
      polls++;
      done = await countCompleted(boss, queue);
      if (done >= o.jobs) break;
      await sleep(50);
    }
    const seconds = (Date.now() - t0) / 1000;
    const stmts = counted(polls);
    const usage = await probe.stop();
    return {
      system: 'pg-boss',
      jobs: done,
      seconds,
      perSecond: done / seconds,
      statementsPerJob: stmts.statements / Math.max(1, done),
      transactionsPerJob: stmts.transactions / Math.max(1, done),
      nodeCpuMsPerJob: usage.nodeCpuMs / Math.max(1, done),
      serverCpuMsPerJob: usage.serverCpuMs / Math.max(1, done),
      history: 'job row kept as completed',
      load: load1(),
      error: done < o.jobs ? `${o.jobs - done} of ${o.jobs} not completed within ${o.timeoutMs / 1000} s` : undefined,
      detail: [`handler saw ${ran} job(s); localConcurrency ${o.concurrency}, batchSize ${o.batchSize}; Postgres backends: ${waitsLine(usage.waits)}`, ...errorLine(errors)],
    };
  });
}

async function countCompleted(boss: PgBoss, queue: string): Promise<number> {
  const jobs = await boss.getDb().executeSql(`select count(*)::int as n from pgboss.job where name = $1 and state = 'completed'`, [queue]);
  return (jobs.rows[0] as { n: number }).n;
}
