import { ms, pct, ratio, summarize, table } from '../lib/stats.js';
import { BYSTANDER_EVERY_MS } from './bystander.js';
import type { BystanderResult, HerdRun, LatenessRun, ThroughputRun } from './common.js';
import { PGBOSS_LIMITS } from './pgboss.js';

/** The schedule benchmark's report: one section per load, each system's row beside Kiln's. */

/** The bystander's goal, per load (issue 10). */
export const BYSTANDER_GOAL_MS = 100;

const errorCell = (r: { error?: string; load: string }) => (r.error ? `ERROR: ${r.error.slice(0, 60)}` : r.load);

/** Rows of fires run and lateness, then Kiln / each anchor by size. */
function latenessTables(runs: LatenessRun[], sizes: number[]): void {
  const rows = [['system', 'schedules', 'expected', 'ran', 'ran %', 'p50', 'p99', 'max', 'load 1m']];
  for (const r of runs) {
    const s = summarize(r.samples);
    rows.push([r.system, String(r.schedules), String(r.expected), String(s.count), pct(s.count, r.expected), ms(s.p50), ms(s.p99), ms(s.max), errorCell(r)]);
  }
  console.log(table(rows));
  const anchors = [...new Set(runs.filter((r) => r.system !== 'Kiln').map((r) => r.system))];
  if (anchors.length === 0 || !runs.some((r) => r.system === 'Kiln')) return;
  console.log('\nKiln / anchor (lateness: below 1x = Kiln is more punctual), p50 and p99; ran % beside');
  const rrows = [['schedules', ...anchors.flatMap((x) => [`vs ${x} p50`, 'p99', 'ran % Kiln/anchor'])]];
  for (const n of sizes) {
    const k = runs.find((r) => r.system === 'Kiln' && r.schedules === n);
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

const KILN_HOW =
  '- Kiln: startKiln with the API and worker roles in one process (as `kiln start`), noop executor; jobs through submitJobs (the first) and SQL copies of its row;';

export function printLateness(runs: LatenessRun[], sizes: number[]): void {
  console.log('\n## 1. Fire lateness of per-second schedules: intended fire time -> RUNNING (ms), fires whose fire time lies in the window');
  console.log('"ran" = fires of the window that started by the deadline; lateness percentiles are over those only, so read them with "ran".');
  latenessTables(runs, sizes);
  console.log('\nHow each system was measured:');
  console.log(`${KILN_HOW} N jobs on "*/1 * * * * *", all with the same first fire second;`);
  console.log('  lateness = executions.started_at - scheduled_for, over the ledger\'s ticks of the window; SKIPPED_OVERLAP, MISSED and unrecorded ticks count as not run.');
  console.log('- graphile-worker: at each fire time addJobs(N noop jobs, run_at = fire time), as a thin per-second scheduler on it would; lateness = task start - fire time. No history, no per-job queue.');
  console.log(`- pg-boss: ${PGBOSS_LIMITS}; N jobs sent 2 s ahead with startAfter = fire time; lateness = handler start - startAfter.`);
  console.log('- BullMQ: N job schedulers { every: 1000, startDate on a whole second }; lateness = processedOn - the iteration\'s intended time (in its job id); missed iterations are skipped by BullMQ.');
  for (const r of runs) printDetail(`${r.system} x${r.schedules}`, r.detail);
}

export function printThroughput(runs: ThroughputRun[]): void {
  console.log('\n## 2. Dispatch throughput: N jobs queued at once, time until all are done (noop work)');
  const kiln = runs.find((r) => r.system === 'Kiln');
  const rows = [['system', 'jobs done', 'seconds', 'jobs/s', 'Kiln/anchor', 'statements/job', 'transactions/job', 'Node CPU ms/job', 'server CPU ms/job', 'load 1m', 'history kept']];
  const fixed = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : '-');
  for (const r of runs) {
    rows.push([
      r.system, String(r.jobs), fixed(r.seconds, 2), fixed(r.perSecond, 0),
      r.system.startsWith('Kiln') || !kiln ? '' : ratio(kiln.perSecond, r.perSecond),
      fixed(r.statementsPerJob, 1), fixed(r.transactionsPerJob, 1), fixed(r.nodeCpuMsPerJob, 2), fixed(r.serverCpuMsPerJob, 2),
      errorCell(r), r.history,
    ]);
  }
  console.log(table(rows));
  console.log('(Kiln/anchor above 1x = Kiln is faster. statements/job: sent through the pg driver per finished job, the benchmark\'s own polling excluded;');
  console.log(' Kiln\'s API answers the bystander through MikroORM\'s own copy of pg, which is not counted.');
  console.log(' CPU/job: this Node process (Kiln\'s CPU includes its API answering the bystander), and the Postgres backends of the system\'s database');
  console.log(' (redis-server for BullMQ), over the run.)');
  console.log(' Postgres backends: shares of sampled non-idle sessions of the system\'s database. "Lock:object (pg_database/0)" = waiting for the cluster-wide');
  console.log(' lock that a transaction which sent a NOTIFY holds from commit through its WAL flush; "Client:ClientRead" = waiting for the Node process;');
  console.log(' LWLock:WALWrite / IO:WALSync = commit flushes.');
  for (const r of runs) printDetail(r.system, r.detail);
}

export function printSpread(runs: LatenessRun[], windowS: number): void {
  const n = runs[0]!.schedules;
  console.log(`\n## 3. Spread: ${n} schedules, each once a minute at second i % 60 (~${Math.round(n / 60)} fires a second), fires in a ${windowS} s window`);
  console.log('"ran" and lateness as in section 1 (intended fire time -> RUNNING, ms).');
  latenessTables(runs, [n]);
  console.log('\nHow each system was measured:');
  console.log(`${KILN_HOW} job i on the 6-field cron "\${i % 60} * * * * *"; lateness from the ledger as in section 1.`);
  console.log('- graphile-worker: at each fire time addJobs(one noop job per schedule of that second, run_at = fire time), the thin scheduler of section 1.');
  console.log('- pg-boss: schedule() cannot fire at a second within the minute (minute cron); one startAfter job per schedule of each second, sent 2 s ahead.');
  // biome-ignore lint/suspicious/noTemplateCurlyInString: prints the pattern the bench builds, as written in its code
  console.log('- BullMQ: one job scheduler per schedule with the cron pattern "${i % 60} * * * * *"; lateness = processedOn - the iteration\'s intended time.');
  for (const r of runs) printDetail(`${r.system} x${r.schedules}`, r.detail);
}

/** From the instant to the last job's start, when all started; NaN otherwise. */
export const lastStart = (r: HerdRun) => (r.samples.length >= r.jobs && !r.error ? Math.max(...r.samples) : NaN);

export function printHerd(runs: HerdRun[]): void {
  console.log(`\n## 4. Herd: ${runs[0]!.jobs} jobs due at one instant; instant -> each job RUNNING (ms)`);
  const kiln = runs.find((r) => r.system === 'Kiln');
  const rows = [['system', 'jobs', 'fired', 'started', 'p50', 'p99', 'last started', 'Kiln/anchor last', 'load 1m']];
  for (const r of runs) {
    const s = summarize(r.samples);
    rows.push([
      r.system, String(r.jobs), String(r.fired), String(s.count), ms(s.p50), ms(s.p99), ms(lastStart(r)),
      r.system === 'Kiln' || !kiln ? '' : ratio(lastStart(kiln), lastStart(r)), errorCell(r),
    ]);
  }
  console.log(table(rows));
  console.log('("fired": Kiln, ticks of the instant recorded FIRED in its ledger; anchors, jobs enqueued for it. "last started" is "-" unless every job started by the deadline.');
  console.log(' Kiln/anchor below 1x = Kiln was done sooner.)');
  console.log('\nHow each system was measured:');
  console.log(`${KILN_HOW} each job's one fire time is the instant (6-field cron on its second, UTC); start = executions.started_at.`);
  console.log('- graphile-worker: at the instant, addJobs(N noop jobs, run_at = the instant), as the thin scheduler of section 1 would; start = task start.');
  console.log('- pg-boss: N jobs sent 2 s ahead with startAfter = the instant; start = handler start.');
  console.log('- BullMQ: N delayed jobs (addBulk, delay to the instant) sent 2 s ahead; start = processedOn.');
  for (const r of runs) printDetail(r.system, r.detail);
}

/** One measured load of Kiln's, named for the report. */
export interface BystanderLoad {
  load: string;
  result: BystanderResult | undefined;
}

/** Whether the bystander met its goal during one load: every query answered, p99 within the goal. */
export function bystanderPass(b: BystanderResult): boolean {
  return b.sent > 0 && b.errors === 0 && b.skipped === 0 && summarize(b.samples).p99 <= BYSTANDER_GOAL_MS;
}

export function printBystander(loads: BystanderLoad[]): void {
  console.log(`\n## 5. Bystander: a GraphQL history query every ${BYSTANDER_EVERY_MS} ms over HTTP to Kiln's own API, during each of Kiln's loads`);
  const rows = [['load', 'queries', 'errors', 'skipped', 'p50', 'p99', 'max', 'rows', 'send lag max', `p99 <= ${BYSTANDER_GOAL_MS} ms`]];
  for (const { load, result: b } of loads) {
    if (!b) {
      rows.push([load, '-', '-', '-', '-', '-', '-', '-', '-', 'NOT MEASURED']);
      continue;
    }
    const s = summarize(b.samples);
    rows.push([load, String(b.sent), String(b.errors), String(b.skipped), ms(s.p50), ms(s.p99), ms(s.max), String(b.lastRows), ms(b.sendLagMaxMs), bystanderPass(b) ? 'PASS' : 'MISS']);
  }
  console.log(table(rows));
  console.log('(The query: `executions(first: 20) { edges { node { id number status startedAt finishedAt } } }` as the user owning every job, with a local');
  console.log(' HS256 token; sent on a fixed timetable whatever the answers, latency from each intended send time to the parsed answer, in ms. The client shares');
  console.log(' its event loop with Kiln\'s API and worker, so a loop Kiln blocks shows as "send lag" and in the latency, as an outside client would see it.');
  console.log(' "skipped": sends left out while 50 queries were unanswered. "rows": executions on the last page. Only Kiln has an API to ask: no anchor column.)');
  for (const { load, result: b } of loads) if (b?.firstError) console.log(`  ${load}: first error: ${b.firstError.slice(0, 160)}`);
}

export function printDetail(title: string, lines: string[]): void {
  if (lines.length === 0) return;
  console.log(`  ${title}:`);
  for (const l of lines) console.log(`    ${l}`);
}
