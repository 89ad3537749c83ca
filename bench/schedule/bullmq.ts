import { randomBytes } from 'node:crypto';
import { Queue, Worker, type Job, type RepeatOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { Probe } from '../lib/probe.js';
import { load1, nextSecond, sleep } from '../lib/stats.js';
import {
  planWindow, Samples, spreadExpected, spreadSecond,
  type HerdOptions, type HerdRun, type LatenessOptions, type LatenessRun, type ThroughputOptions, type ThroughputRun, type Window,
} from './common.js';

/**
 * BullMQ against the Redis at 127.0.0.1:6379, under a key prefix of its own (`kilnbench`) and a
 * fresh queue name; the queue is obliterated afterwards (never FLUSHALL: others share Redis).
 *
 * Its scheduler: one job scheduler per schedule; per-second ones `every: 1000` with a common
 * `startDate` on a whole second, so all fire at the same instants as Kiln's `*\/1 * * * * *`
 * jobs; the spread's on the same 6-field cron pattern as Kiln's. BullMQ adds a scheduler's next
 * job when the current one starts, as a delayed job whose id carries its intended time
 * (`repeat:<scheduler>:<millis>`); a late iteration's missed slots are skipped.
 * Lateness = `processedOn` (when the worker took the job) - that intended time. The herd has no
 * scheduler: delayed jobs, all due at the instant.
 */

const CONNECTION = { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null } as const;
const PREFIX = 'kilnbench';

async function withQueue<T>(label: string, fn: (queue: Queue, name: string) => Promise<T>): Promise<T> {
  const name = `${label}-${randomBytes(4).toString('hex')}`;
  const queue = new Queue(name, { connection: CONNECTION, prefix: PREFIX });
  try {
    return await fn(queue, name);
  } finally {
    await queue.obliterate({ force: true }).catch((err: Error) => console.error(`bullmq obliterate: ${err.message}`));
    await queue.close();
    await removeLeftovers(name);
  }
}

/** Deletes whatever keys of this queue obliterate left (scheduler hashes), by SCAN of its own prefix only. */
async function removeLeftovers(name: string): Promise<void> {
  const redis = new Redis(CONNECTION);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${PREFIX}:${name}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

function intendedMillis(job: Job): number {
  return Number(String(job.id).split(':').pop());
}

/** Per-second schedules: one job scheduler each, `every: 1000` from a common whole-second start. */
export function bullmqLateness(o: LatenessOptions): Promise<LatenessRun> {
  return bullmqSchedulers('late', o, (_, first) => ({ every: 1000, startDate: first }), (w) => o.schedules * ((w.end - w.start) / 1000));
}

/**
 * The spread: scheduler i on the 6-field cron pattern `${i % 60} * * * * *` (BullMQ reads seconds
 * first), starting just before the first fire time so that second's schedulers fire then.
 */
export function bullmqSpread(o: LatenessOptions): Promise<LatenessRun> {
  return bullmqSchedulers('spread', o, (i, first) => ({ pattern: `${spreadSecond(i)} * * * * *`, startDate: first - 1 }), (w) => spreadExpected(o.schedules, w));
}

/** `o.schedules` job schedulers with the repeat options `repeatOf(i, first fire time)`. */
async function bullmqSchedulers(
  label: string,
  o: LatenessOptions,
  repeatOf: (i: number, first: number) => Omit<RepeatOptions, 'key'>,
  expectedIn: (w: Window) => number,
): Promise<LatenessRun> {
  return withQueue(label, async (queue, name) => {
    // Schedulers are created before the first fire time; allow ~0.5 ms each, measured below.
    const first = Math.ceil((Date.now() + 1500 + o.schedules * 0.5) / 1000) * 1000;
    const w = planWindow(first, o);
    const samples = new Samples(w);
    let unaligned = 0;
    const errors: string[] = [];
    const worker = new Worker(
      name,
      async (job) => {
        const at = intendedMillis(job);
        if (at % 1000 !== 0) unaligned++;
        samples.add(at, job.processedOn ?? Date.now());
      },
      { connection: CONNECTION, prefix: PREFIX, concurrency: o.concurrency },
    );
    worker.on('error', (err) => errors.push(err.message));
    try {
      await worker.waitUntilReady();
      const t0 = Date.now();
      for (let i = 0; i < o.schedules; i += 500) {
        await Promise.all(
          Array.from({ length: Math.min(500, o.schedules - i) }, (_, j) =>
            queue.upsertJobScheduler(`s${i + j}`, repeatOf(i + j, first), { name: 'tick', data: {} }),
          ),
        );
      }
      const createMs = Date.now() - t0;
      await sleep(w.end - Date.now());
      const expected = expectedIn(w);
      await samples.drain(expected, w.end + o.drainMs);
      const values = [...samples.values];
      return {
        system: 'BullMQ',
        schedules: o.schedules,
        expected,
        samples: values,
        load: load1(),
        detail: [
          `created ${o.schedules} job scheduler(s) in ${createMs} ms (first fire ${first - t0 - createMs} ms after); fires off the whole second: ${unaligned}`,
          ...(errors.length ? [`worker errors: ${errors.length}, first: ${errors[0]!.slice(0, 160)}`] : []),
        ],
      };
    } finally {
      await worker.close();
    }
  });
}

/** The herd: `jobs` delayed jobs (addBulk, delay to the instant) sent 2 s ahead; the time from the instant to each `processedOn`. */
export async function bullmqHerd(o: HerdOptions): Promise<HerdRun> {
  return withQueue('herd', async (queue, name) => {
    const at = nextSecond(Date.now() + Math.max(o.leadMs, 2500));
    const starts: number[] = [];
    const errors: string[] = [];
    const worker = new Worker(name, async (job) => void starts.push((job.processedOn ?? Date.now()) - at), {
      connection: CONNECTION, prefix: PREFIX, concurrency: o.concurrency,
    });
    worker.on('error', (err) => errors.push(err.message));
    try {
      await worker.waitUntilReady();
      await sleep(at - 2000 - Date.now());
      const t0 = Date.now();
      for (let i = 0; i < o.jobs; i += 1000) {
        const delay = at - Date.now();
        await queue.addBulk(Array.from({ length: Math.min(1000, o.jobs - i) }, (_, j) => ({ name: 'herd', data: { i: i + j }, opts: { delay } })));
      }
      const sendMs = Date.now() - t0;
      while (starts.length < o.jobs && Date.now() < at + o.timeoutMs) await sleep(50);
      return {
        system: 'BullMQ',
        jobs: o.jobs,
        at,
        samples: [...starts],
        fired: o.jobs,
        load: load1(),
        detail: [
          `adding the ${o.jobs} delayed jobs took ${sendMs} ms, 2000 ms ahead of the instant`,
          ...(errors.length ? [`worker errors: ${errors.length}, first: ${errors[0]!.slice(0, 160)}`] : []),
        ],
      };
    } finally {
      await worker.close();
    }
  });
}

/** `jobs` jobs added with `addBulk`; the time until the worker has completed all (completed jobs are kept). */
export async function bullmqThroughput(o: ThroughputOptions): Promise<ThroughputRun> {
  return withQueue('tp', async (queue, name) => {
    let completed = 0;
    let lastAt = 0;
    const worker = new Worker(name, async () => {}, { connection: CONNECTION, prefix: PREFIX, concurrency: o.concurrency });
    worker.on('completed', () => {
      completed++;
      lastAt = Date.now();
    });
    try {
      await worker.waitUntilReady();
      await sleep(500);
      const probe = await Probe.start(null);
      const t0 = Date.now();
      for (let i = 0; i < o.jobs; i += 1000) {
        await queue.addBulk(Array.from({ length: Math.min(1000, o.jobs - i) }, (_, j) => ({ name: 'noop', data: { i: i + j } })));
      }
      while (completed < o.jobs && Date.now() - t0 < o.timeoutMs) await sleep(20);
      const seconds = ((completed >= o.jobs ? lastAt : Date.now()) - t0) / 1000;
      const usage = await probe.stop();
      return {
        system: 'BullMQ',
        jobs: completed,
        seconds,
        perSecond: completed / seconds,
        statementsPerJob: NaN,
        transactionsPerJob: NaN,
        nodeCpuMsPerJob: usage.nodeCpuMs / Math.max(1, completed),
        serverCpuMsPerJob: usage.serverCpuMs / Math.max(1, completed),
        history: 'job hash kept in the completed set',
        load: load1(),
        error: completed < o.jobs ? `${o.jobs - completed} of ${o.jobs} not completed within ${o.timeoutMs / 1000} s` : undefined,
        detail: ['server CPU = redis-server (the whole server: other users of this Redis count too)'],
      };
    } finally {
      await worker.close();
    }
  });
}
