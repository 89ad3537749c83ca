import { availableParallelism } from 'node:os';
import { intList, parseArgs, positive } from './lib/args.js';
import { countStatements } from './lib/pg.js';
import { ms, pct, ratio, sleep, summarize, table, uptimeLine } from './lib/stats.js';
import { bullmqLateness, bullmqThroughput } from './schedule/bullmq.js';
import { guarded, type LatenessOptions, type LatenessRun, type ThroughputOptions, type ThroughputRun } from './schedule/common.js';
import { graphileLateness, graphileThroughput } from './schedule/graphile.js';
import { kilnLateness, kilnThroughput, WHAT_IF } from './schedule/kiln.js';
import { PGBOSS_LIMITS, pgbossLateness, pgbossThroughput } from './schedule/pgboss.js';

/**
 * `npm run bench -- schedule`: Kiln's fire lateness (fire time -> RUNNING) for many per-second
 * schedules and its dispatch throughput, beside raw graphile-worker, pg-boss and BullMQ measured
 * in the same run on the same machine, with the goals of issue 3:
 *   - lateness p99 <= 50 ms at 10,000 per-second schedules (all fires run);
 *   - throughput >= 0.5 x raw graphile-worker.
 * Systems run one after another (never two at once), each on a fresh database / Redis queue.
 */

const SPEC = {
  sizes: { default: '1,1000,10000', help: 'numbers of per-second schedules' },
  seconds: { default: '10', help: 'measurement window (whole seconds)' },
  warmup: { default: '3', help: 'seconds of firing before the window' },
  drain: { default: '10', help: 'seconds after the window in which fires may still start' },
  jobs: { default: '5000', help: 'jobs for the throughput measurement' },
  concurrency: { default: '16', help: 'jobs run at once by each system\'s worker' },
  poll: { default: '1000', help: 'graphile-worker poll interval (ms) for Kiln and raw graphile-worker; Kiln\'s default' },
  // pg-boss fetches batchSize jobs per poll and waits a poll interval between short fetches:
  // with its default of 1 it cannot exceed localConcurrency / 0.5 s, so a batch is its fair setting.
  'pgboss-batch': { default: '20', help: 'pg-boss work() batchSize (burst while batches come back full)' },
  systems: { default: 'kiln,graphile,pgboss,bullmq', help: 'which systems to run' },
  parts: { default: 'lateness,throughput', help: 'which measurements to run' },
  timeout: { default: '180', help: 'seconds a throughput run may take at most' },
  'what-if': { default: 'on', help: 'also run Kiln\'s throughput with its NOTIFY triggers disabled (diagnostic)' },
};

const GOAL_SIZE = 10_000;
const GOAL_P99_MS = 50;
const GOAL_RAN = 0.99;
const GOAL_THROUGHPUT = 0.5;

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, SPEC);
  const sizes = intList(a.sizes, 'sizes');
  const seconds = Math.round(positive(a.seconds, 'seconds'));
  const systems = new Set(a.systems.split(','));
  const parts = new Set(a.parts.split(','));
  const concurrency = Math.round(positive(a.concurrency, 'concurrency'));
  const pollMs = Math.round(positive(a.poll, 'poll'));
  const batchSize = Math.round(positive(a['pgboss-batch'], 'pgboss-batch'));
  const late = (schedules: number): LatenessOptions => ({
    schedules, concurrency, pollMs,
    warmupMs: positive(a.warmup, 'warmup') * 1000, windowMs: seconds * 1000, drainMs: positive(a.drain, 'drain') * 1000,
  });
  const tp: ThroughputOptions = { jobs: Math.round(positive(a.jobs, 'jobs')), concurrency, pollMs, timeoutMs: positive(a.timeout, 'timeout') * 1000 };
  countStatements();

  console.log(`# Kiln schedule benchmark — ${new Date().toISOString()}`);
  console.log(`node ${process.version}, ${availableParallelism()} CPU(s), ${uptimeLine()} at start (other engineers' tests may share the machine)`);
  console.log(
    `settings: sizes ${sizes.join(', ')}; warm-up ${a.warmup} s, window ${seconds} s, drain <= ${a.drain} s; concurrency ${concurrency} for every system; ` +
      `poll ${pollMs} ms (Kiln, graphile-worker); throughput ${tp.jobs} jobs`,
  );

  /** Runs one measurement after a short pause, so the previous system's teardown (dropped database, autovacuum) settles. */
  const step = async <T extends { system: string; load: string; error?: string }>(what: string, fn: () => Promise<T>, fallback: Omit<T, 'error' | 'load'>) => {
    await sleep(2000);
    const r = await guarded(fn, fallback);
    console.error(`  ${what} ${r.system}: done, load ${r.load}${r.error ? `, ERROR ${r.error}` : ''}`);
    return r;
  };

  const lateRuns: LatenessRun[] = [];
  if (parts.has('lateness')) {
    for (const n of sizes) {
      const o = late(n);
      const fallback = (system: string) => ({ system, schedules: n, expected: n * seconds, samples: [], detail: [] });
      const what = `lateness x${n}`;
      if (systems.has('kiln')) lateRuns.push(await step(what, () => kilnLateness(o), fallback('Kiln')));
      if (systems.has('graphile')) lateRuns.push(await step(what, () => graphileLateness(o), fallback('graphile-worker')));
      if (systems.has('pgboss')) lateRuns.push(await step(what, () => pgbossLateness({ ...o, batchSize }), fallback('pg-boss')));
      if (systems.has('bullmq')) lateRuns.push(await step(what, () => bullmqLateness(o), fallback('BullMQ')));
    }
  }

  const tpRuns: ThroughputRun[] = [];
  if (parts.has('throughput')) {
    const fallback = (system: string) => ({ system, jobs: 0, seconds: NaN, perSecond: NaN, statementsPerJob: NaN, transactionsPerJob: NaN, nodeCpuMsPerJob: NaN, serverCpuMsPerJob: NaN, history: '', detail: [] });
    if (systems.has('kiln')) tpRuns.push(await step('throughput', () => kilnThroughput(tp), fallback('Kiln')));
    if (systems.has('kiln') && a['what-if'] === 'on') tpRuns.push(await step('throughput', () => kilnThroughput(tp, true), fallback(WHAT_IF)));
    if (systems.has('graphile')) {
      tpRuns.push(await step('throughput', () => graphileThroughput(tp), fallback('graphile-worker')));
      tpRuns.push(await step('throughput', () => graphileThroughput(tp, true), fallback('graphile-worker, queue_name per job')));
    }
    if (systems.has('pgboss')) tpRuns.push(await step('throughput', () => pgbossThroughput({ ...tp, batchSize }), fallback('pg-boss')));
    if (systems.has('bullmq')) tpRuns.push(await step('throughput', () => bullmqThroughput(tp), fallback('BullMQ')));
  }

  if (lateRuns.length > 0) printLateness(lateRuns, sizes);
  if (tpRuns.length > 0) printThroughput(tpRuns);
  printGoals(lateRuns, tpRuns);
  console.log(`\n${uptimeLine()} at end`);
}

function printLateness(runs: LatenessRun[], sizes: number[]): void {
  console.log('\n## 1. Fire lateness: intended fire time -> RUNNING (ms), fires whose fire time lies in the window');
  console.log('"ran" = fires of the window that started by the deadline; lateness percentiles are over those only, so read them with "ran".');
  const rows = [['system', 'schedules', 'expected', 'ran', 'ran %', 'p50', 'p99', 'max', 'load 1m']];
  for (const r of runs) {
    const s = summarize(r.samples);
    rows.push([r.system, String(r.schedules), String(r.expected), String(s.count), pct(s.count, r.expected), ms(s.p50), ms(s.p99), ms(s.max), r.error ? `ERROR: ${r.error.slice(0, 60)}` : r.load]);
  }
  console.log(table(rows));
  const kiln = (n: number) => runs.find((r) => r.system === 'Kiln' && r.schedules === n);
  const anchors = [...new Set(runs.filter((r) => r.system !== 'Kiln').map((r) => r.system))];
  if (anchors.length > 0 && runs.some((r) => r.system === 'Kiln')) {
    console.log('\nKiln / anchor (lateness: below 1x = Kiln is more punctual), p50 and p99; ran % beside');
    const head = ['schedules', ...anchors.flatMap((x) => [`vs ${x} p50`, 'p99', 'ran % Kiln/anchor'])];
    const rrows = [head];
    for (const n of sizes) {
      const k = kiln(n);
      if (!k) continue;
      const ks = summarize(k.samples);
      const row = [String(n)];
      for (const x of anchors) {
        const ar = runs.find((r) => r.system === x && r.schedules === n);
        const as = ar ? summarize(ar.samples) : null;
        row.push(as ? ratio(ks.p50, as.p50) : '-', as ? ratio(ks.p99, as.p99) : '-', as ? `${pct(ks.count, k.expected)}/${pct(as.count, ar!.expected)}` : '-');
      }
      rrows.push(row);
    }
    console.log(table(rrows));
  }
  console.log('\nHow each system was measured:');
  console.log('- Kiln: startKiln (worker role, noop executor); N jobs on "*/1 * * * * *" (one through submitJobs, the rest SQL copies of its row, all with the same first fire second);');
  console.log('  lateness = executions.started_at - scheduled_for, over the ledger\'s ticks of the window; SKIPPED_OVERLAP, MISSED and unrecorded ticks count as not run.');
  console.log('- graphile-worker: at each fire time addJobs(N noop jobs, run_at = fire time), as a thin per-second scheduler on it would; lateness = task start - fire time. No history, no per-job queue.');
  console.log(`- pg-boss: ${PGBOSS_LIMITS}; N jobs sent 2 s ahead with startAfter = fire time; lateness = handler start - startAfter.`);
  console.log('- BullMQ: N job schedulers { every: 1000, startDate on a whole second }; lateness = processedOn - the iteration\'s intended time (in its job id); missed iterations are skipped by BullMQ.');
  for (const r of runs) printDetail(`${r.system} x${r.schedules}`, r.detail);
}

function printThroughput(runs: ThroughputRun[]): void {
  console.log('\n## 2. Dispatch throughput: N jobs queued at once, time until all are done (noop work)');
  const kiln = runs.find((r) => r.system === 'Kiln');
  const rows = [['system', 'jobs done', 'seconds', 'jobs/s', 'Kiln/anchor', 'statements/job', 'transactions/job', 'Node CPU ms/job', 'server CPU ms/job', 'load 1m', 'history kept']];
  const fixed = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : '-');
  for (const r of runs) {
    rows.push([
      r.system, String(r.jobs), fixed(r.seconds, 2), fixed(r.perSecond, 0),
      r.system.startsWith('Kiln') || !kiln ? '' : ratio(kiln.perSecond, r.perSecond),
      fixed(r.statementsPerJob, 1), fixed(r.transactionsPerJob, 1), fixed(r.nodeCpuMsPerJob, 2), fixed(r.serverCpuMsPerJob, 2),
      r.error ? `ERROR: ${r.error.slice(0, 60)}` : r.load, r.history,
    ]);
  }
  console.log(table(rows));
  console.log('(Kiln/anchor above 1x = Kiln is faster. statements/job: sent through the pg driver per finished job, the benchmark\'s own polling excluded.');
  console.log(' CPU/job: this Node process, and the Postgres backends of the system\'s database (redis-server for BullMQ), over the run.)');
  console.log(' Postgres backends: shares of sampled non-idle sessions of the system\'s database. "Lock:object (pg_database/0)" = waiting for the cluster-wide');
  console.log(' lock that a transaction which sent a NOTIFY holds from commit through its WAL flush; "Client:ClientRead" = waiting for the Node process;');
  console.log(' LWLock:WALWrite / IO:WALSync = commit flushes.');
  for (const r of runs) printDetail(r.system, r.detail);
}

function printDetail(title: string, lines: string[]): void {
  if (lines.length === 0) return;
  console.log(`  ${title}:`);
  for (const l of lines) console.log(`    ${l}`);
}

function printGoals(late: LatenessRun[], tp: ThroughputRun[]): void {
  console.log('\n## Goals (issue 3)');
  const k = late.find((r) => r.system === 'Kiln' && r.schedules === GOAL_SIZE);
  if (!k) {
    console.log(`- lateness p99 <= ${GOAL_P99_MS} ms at ${GOAL_SIZE} schedules: NOT MEASURED (run with a size of ${GOAL_SIZE})`);
  } else {
    const s = summarize(k.samples);
    const ranShare = s.count / k.expected;
    const pass = !k.error && s.p99 <= GOAL_P99_MS && ranShare >= GOAL_RAN;
    console.log(
      `- lateness p99 <= ${GOAL_P99_MS} ms at ${GOAL_SIZE} per-second schedules, with >= ${GOAL_RAN * 100}% of fires run: ` +
        `Kiln p99 ${ms(s.p99)} ms, ${pct(s.count, k.expected)} of ${k.expected} fires ran -> ${pass ? 'PASS' : 'MISS'}`,
    );
  }
  const kt = tp.find((r) => r.system === 'Kiln');
  const gt = tp.find((r) => r.system === 'graphile-worker');
  if (!kt || !gt) {
    console.log(`- throughput >= ${GOAL_THROUGHPUT} x raw graphile-worker: NOT MEASURED (needs both kiln and graphile)`);
  } else {
    const r = kt.perSecond / gt.perSecond;
    const pass = !kt.error && !gt.error && r >= GOAL_THROUGHPUT;
    console.log(`- throughput >= ${GOAL_THROUGHPUT} x raw graphile-worker: Kiln ${kt.perSecond.toFixed(0)}/s vs ${gt.perSecond.toFixed(0)}/s = ${Number.isFinite(r) ? r.toFixed(2) : '-'}x -> ${pass ? 'PASS' : 'MISS'}`);
  }
}
