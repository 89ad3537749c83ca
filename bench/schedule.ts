import { availableParallelism } from 'node:os';
import { intList, parseArgs, positive } from './lib/args.js';
import { countStatements } from './lib/pg.js';
import { sleep, uptimeLine } from './lib/stats.js';
import { bullmqHerd, bullmqLateness, bullmqSpread, bullmqThroughput } from './schedule/bullmq.js';
import { guarded, type HerdOptions, type HerdRun, type LatenessOptions, type LatenessRun, type ThroughputOptions, type ThroughputRun } from './schedule/common.js';
import { printGoals } from './schedule/goals.js';
import { graphileHerd, graphileLateness, graphileSpread, graphileThroughput } from './schedule/graphile.js';
import { kilnLateness, kilnThroughput, WHAT_IF } from './schedule/kiln.js';
import { kilnHerd, kilnSpread } from './schedule/kilnLoads.js';
import { pgbossHerd, pgbossLateness, pgbossSpread, pgbossThroughput } from './schedule/pgboss.js';
import { printBystander, printHerd, printLateness, printSpread, printThroughput, type BystanderLoad } from './schedule/report.js';

/**
 * `npm run bench -- schedule`: Kiln beside raw graphile-worker, pg-boss and BullMQ, measured in
 * the same run on the same machine, under four loads:
 *   - lateness: N per-second schedules, fire time -> RUNNING;
 *   - throughput: 5,000 noop executions queued at once, with statements and transactions per run;
 *   - spread: 10,000 schedules, each once a minute, at seconds spread over the minute;
 *   - herd: 10,000 jobs due in the same second, time until the last is RUNNING;
 * and, during each of Kiln's loads, a bystander querying the history over Kiln's API every
 * 100 ms. Ends with the goals of issue 10, PASS or MISS.
 * Systems run one after another (never two at once), each on a fresh database / Redis queue.
 */

const PARTS = ['lateness', 'throughput', 'spread', 'herd'];

const SPEC = {
  sizes: { default: '1,1000', help: 'numbers of per-second schedules (lateness)' },
  seconds: { default: '10', help: 'lateness measurement window (whole seconds)' },
  warmup: { default: '3', help: 'seconds of firing before the lateness window' },
  drain: { default: '10', help: 'seconds after a window in which fires may still start (lateness, spread)' },
  jobs: { default: '5000', help: 'jobs for the throughput measurement' },
  concurrency: { default: '16', help: 'jobs run at once by each system\'s worker' },
  poll: { default: '1000', help: 'graphile-worker poll interval (ms) for Kiln and raw graphile-worker; Kiln\'s default' },
  // pg-boss fetches batchSize jobs per poll and waits a poll interval between short fetches:
  // with its default of 1 it cannot exceed localConcurrency / 0.5 s, so a batch is its fair setting.
  'pgboss-batch': { default: '20', help: 'pg-boss work() batchSize (burst while batches come back full)' },
  systems: { default: 'kiln,graphile,pgboss,bullmq', help: 'which systems to run' },
  parts: { default: PARTS.join(','), help: 'which loads to run' },
  timeout: { default: '180', help: 'seconds a throughput run may take at most' },
  // Off by default: a diagnostic of today's per-row NOTIFY triggers, and a whole extra Kiln run.
  'what-if': { default: 'off', help: 'also run Kiln\'s throughput with its NOTIFY triggers disabled (diagnostic)' },
  'spread-schedules': { default: '10000', help: 'spread: schedules, job i once a minute at second i % 60' },
  'spread-window': { default: '60', help: 'spread: measurement window in seconds, rounded up to whole minutes' },
  'spread-warmup': { default: '10', help: 'spread: seconds of firing before the window' },
  'herd-jobs': { default: '10000', help: 'herd: jobs due at one instant' },
  'herd-lead': { default: '5', help: 'herd: seconds from the start of set-up to the instant' },
  'herd-timeout': { default: '60', help: 'herd: seconds after the instant in which jobs may still start' },
};

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, SPEC);
  const sizes = intList(a.sizes, 'sizes');
  const seconds = Math.round(positive(a.seconds, 'seconds'));
  const systems = new Set(a.systems.split(','));
  const parts = new Set(a.parts.split(','));
  const unknown = [...parts].filter((p) => !PARTS.includes(p));
  if (unknown.length > 0) throw new Error(`--parts: unknown ${unknown.join(', ')}; known: ${PARTS.join(', ')}`);
  const concurrency = Math.round(positive(a.concurrency, 'concurrency'));
  const pollMs = Math.round(positive(a.poll, 'poll'));
  const batchSize = Math.round(positive(a['pgboss-batch'], 'pgboss-batch'));
  const drainMs = positive(a.drain, 'drain') * 1000;
  const late = (schedules: number): LatenessOptions => ({
    schedules, concurrency, pollMs, drainMs, warmupMs: positive(a.warmup, 'warmup') * 1000, windowMs: seconds * 1000,
  });
  const tp: ThroughputOptions = { jobs: Math.round(positive(a.jobs, 'jobs')), concurrency, pollMs, timeoutMs: positive(a.timeout, 'timeout') * 1000 };
  // Whole minutes: every spread schedule then fires equally often in the window.
  const spreadWindowS = Math.ceil(positive(a['spread-window'], 'spread-window') / 60) * 60;
  const spread: LatenessOptions = {
    schedules: Math.round(positive(a['spread-schedules'], 'spread-schedules')), concurrency, pollMs, drainMs,
    warmupMs: positive(a['spread-warmup'], 'spread-warmup') * 1000, windowMs: spreadWindowS * 1000,
  };
  const herd: HerdOptions = {
    jobs: Math.round(positive(a['herd-jobs'], 'herd-jobs')), concurrency, pollMs,
    leadMs: positive(a['herd-lead'], 'herd-lead') * 1000, timeoutMs: positive(a['herd-timeout'], 'herd-timeout') * 1000,
  };
  countStatements();

  console.log(`# Kiln schedule benchmark — ${new Date().toISOString()}`);
  console.log(`node ${process.version}, ${availableParallelism()} CPU(s), ${uptimeLine()} at start (other engineers' tests may share the machine)`);
  console.log(
    `settings: parts ${[...parts].join(', ')}; systems ${[...systems].join(', ')}; concurrency ${concurrency} for every system; poll ${pollMs} ms (Kiln, graphile-worker)\n` +
      `  lateness: sizes ${sizes.join(', ')}; warm-up ${a.warmup} s, window ${seconds} s, drain <= ${a.drain} s; throughput: ${tp.jobs} jobs\n` +
      `  spread: ${spread.schedules} schedules, warm-up ${a['spread-warmup']} s, window ${spreadWindowS} s, drain <= ${a.drain} s; ` +
      `herd: ${herd.jobs} jobs, instant ${a['herd-lead']} s after set-up begins, deadline ${a['herd-timeout']} s after it`,
  );

  /** Runs one measurement after a short pause, so the previous system's teardown (dropped database, autovacuum) settles. */
  const step = async <T extends { system: string; load: string; error?: string }>(what: string, fn: () => Promise<T>, fallback: Omit<T, 'error' | 'load'>) => {
    await sleep(2000);
    const r = await guarded(fn, fallback);
    console.error(`  ${what} ${r.system}: done, load ${r.load}${r.error ? `, ERROR ${r.error}` : ''}`);
    return r;
  };
  const bystander: BystanderLoad[] = [];

  const lateRuns: LatenessRun[] = [];
  if (parts.has('lateness')) {
    for (const n of sizes) {
      const o = late(n);
      const fallback = (system: string) => ({ system, schedules: n, expected: n * seconds, samples: [], detail: [] });
      const what = `lateness x${n}`;
      if (systems.has('kiln')) {
        const k = await step(what, () => kilnLateness(o), fallback('Kiln'));
        lateRuns.push(k);
        bystander.push({ load: what, result: k.bystander });
      }
      if (systems.has('graphile')) lateRuns.push(await step(what, () => graphileLateness(o), fallback('graphile-worker')));
      if (systems.has('pgboss')) lateRuns.push(await step(what, () => pgbossLateness({ ...o, batchSize }), fallback('pg-boss')));
      if (systems.has('bullmq')) lateRuns.push(await step(what, () => bullmqLateness(o), fallback('BullMQ')));
    }
  }

  const tpRuns: ThroughputRun[] = [];
  if (parts.has('throughput')) {
    const fallback = (system: string) => ({ system, jobs: 0, seconds: NaN, perSecond: NaN, statementsPerJob: NaN, transactionsPerJob: NaN, nodeCpuMsPerJob: NaN, serverCpuMsPerJob: NaN, history: '', detail: [] });
    if (systems.has('kiln')) {
      const k = await step('throughput', () => kilnThroughput(tp), fallback('Kiln'));
      tpRuns.push(k);
      bystander.push({ load: 'throughput', result: k.bystander });
    }
    if (systems.has('kiln') && a['what-if'] === 'on') tpRuns.push(await step('throughput', () => kilnThroughput(tp, true), fallback(WHAT_IF)));
    if (systems.has('graphile')) {
      tpRuns.push(await step('throughput', () => graphileThroughput(tp), fallback('graphile-worker')));
      tpRuns.push(await step('throughput', () => graphileThroughput(tp, true), fallback('graphile-worker, queue_name per job')));
    }
    if (systems.has('pgboss')) tpRuns.push(await step('throughput', () => pgbossThroughput({ ...tp, batchSize }), fallback('pg-boss')));
    if (systems.has('bullmq')) tpRuns.push(await step('throughput', () => bullmqThroughput(tp), fallback('BullMQ')));
  }

  const spreadRuns: LatenessRun[] = [];
  if (parts.has('spread')) {
    const n = spread.schedules;
    const fallback = (system: string) => ({ system, schedules: n, expected: NaN, samples: [], detail: [] });
    if (systems.has('kiln')) {
      const k = await step('spread', () => kilnSpread(spread), fallback('Kiln'));
      spreadRuns.push(k);
      bystander.push({ load: `spread x${n}`, result: k.bystander });
    }
    if (systems.has('graphile')) spreadRuns.push(await step('spread', () => graphileSpread(spread), fallback('graphile-worker')));
    if (systems.has('pgboss')) spreadRuns.push(await step('spread', () => pgbossSpread({ ...spread, batchSize }), fallback('pg-boss')));
    if (systems.has('bullmq')) spreadRuns.push(await step('spread', () => bullmqSpread(spread), fallback('BullMQ')));
  }

  const herdRuns: HerdRun[] = [];
  if (parts.has('herd')) {
    const fallback = (system: string) => ({ system, jobs: herd.jobs, at: NaN, samples: [], fired: 0, detail: [] });
    if (systems.has('kiln')) {
      const k = await step('herd', () => kilnHerd(herd), fallback('Kiln'));
      herdRuns.push(k);
      bystander.push({ load: `herd x${herd.jobs}`, result: k.bystander });
    }
    if (systems.has('graphile')) herdRuns.push(await step('herd', () => graphileHerd(herd), fallback('graphile-worker')));
    if (systems.has('pgboss')) herdRuns.push(await step('herd', () => pgbossHerd({ ...herd, batchSize }), fallback('pg-boss')));
    if (systems.has('bullmq')) herdRuns.push(await step('herd', () => bullmqHerd(herd), fallback('BullMQ')));
  }

  if (lateRuns.length > 0) printLateness(lateRuns, sizes);
  if (tpRuns.length > 0) printThroughput(tpRuns);
  if (spreadRuns.length > 0) printSpread(spreadRuns, spreadWindowS);
  if (herdRuns.length > 0) printHerd(herdRuns);
  if (bystander.length > 0) printBystander(bystander);
  printGoals({ late: lateRuns, tp: tpRuns, spread: spreadRuns, herd: herdRuns, bystander });
  console.log(`\n${uptimeLine()} at end`);
}
