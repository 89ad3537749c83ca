import { ms, pct, summarize } from '../lib/stats.js';
import type { HerdRun, LatenessRun, ThroughputRun } from './common.js';
import { BYSTANDER_GOAL_MS, bystanderPass, lastStart, type BystanderLoad } from './report.js';

/**
 * The goals of issue 10, each printed with Kiln's figure, the anchor's from the same run where
 * there is one, and PASS or MISS. A goal whose load was not run (or not at its size) says so.
 */

export const GOALS = {
  throughputRatio: 0.5,
  statementsPerRun: 4,
  transactionsPerRun: 3,
  lateSize: 1000,
  lateRan: 0.99,
  spreadSize: 10_000,
  spreadRan: 0.999,
  spreadP99Ms: 100,
  herdSize: 10_000,
  herdLastMs: 15_000,
} as const;

/** Orders p99s worst first, a load without one first of all. */
const worstFirst = (v: number) => (Number.isNaN(v) ? Infinity : v);
const verdict = (pass: boolean) => (pass ? 'PASS' : 'MISS');
const x = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : '-');
const sizeNote = (measured: number, goal: number) => (measured === goal ? '' : ` (measured at ${measured}, the goal's size is ${goal}: indicative only)`);

export interface GoalInputs {
  late: LatenessRun[];
  tp: ThroughputRun[];
  spread: LatenessRun[];
  herd: HerdRun[];
  bystander: BystanderLoad[];
}

export function printGoals({ late, tp, spread, herd, bystander }: GoalInputs): void {
  console.log('\n## Goals (issue 10)');
  const line = (n: number, text: string) => console.log(`${n}. ${text}`);

  const kt = tp.find((r) => r.system === 'Kiln');
  const gt = tp.find((r) => r.system === 'graphile-worker');
  if (!kt || !gt) {
    line(1, `throughput >= ${GOALS.throughputRatio}x raw graphile-worker: NOT MEASURED (run the throughput part with kiln and graphile)`);
  } else {
    const r = kt.perSecond / gt.perSecond;
    line(1, `throughput (${kt.jobs} noop executions, full history) >= ${GOALS.throughputRatio}x raw graphile-worker: ` +
      `Kiln ${kt.perSecond.toFixed(0)}/s, graphile-worker ${gt.perSecond.toFixed(0)}/s = ${x(r)} -> ${verdict(!kt.error && !gt.error && r >= GOALS.throughputRatio)}`);
  }

  if (!kt) {
    line(2, `<= ${GOALS.statementsPerRun} statements and <= ${GOALS.transactionsPerRun} transactions per noop execution: NOT MEASURED (run the throughput part with kiln)`);
  } else {
    const anchor = gt ? `; graphile-worker ${gt.statementsPerJob.toFixed(1)} / ${gt.transactionsPerJob.toFixed(1)} per job` : '';
    const pass = !kt.error && kt.statementsPerJob <= GOALS.statementsPerRun && kt.transactionsPerJob <= GOALS.transactionsPerRun;
    line(2, `<= ${GOALS.statementsPerRun} statements and <= ${GOALS.transactionsPerRun} transactions per noop execution: ` +
      `Kiln ${kt.statementsPerJob.toFixed(1)} statements / ${kt.transactionsPerJob.toFixed(1)} transactions${anchor} -> ${verdict(pass)}`);
  }

  const kl = late.find((r) => r.system === 'Kiln' && r.schedules === GOALS.lateSize);
  const pl = late.find((r) => r.system === 'pg-boss' && r.schedules === GOALS.lateSize);
  if (!kl || !pl) {
    line(3, `${GOALS.lateSize} per-second schedules, >= ${GOALS.lateRan * 100}% run, p99 <= pg-boss's: NOT MEASURED (run lateness at size ${GOALS.lateSize} with kiln and pgboss)`);
  } else {
    const ks = summarize(kl.samples);
    const ps = summarize(pl.samples);
    const pass = !kl.error && !pl.error && ks.count / kl.expected >= GOALS.lateRan && ks.p99 <= ps.p99;
    line(3, `${GOALS.lateSize} per-second schedules, >= ${GOALS.lateRan * 100}% of fires run, p99 lateness <= pg-boss's: ` +
      `Kiln ${pct(ks.count, kl.expected)} run, p99 ${ms(ks.p99)} ms; pg-boss ${pct(ps.count, pl.expected)}, p99 ${ms(ps.p99)} ms (Kiln/pg-boss ${x(ks.p99 / ps.p99)}) -> ${verdict(pass)}`);
  }

  const ks = spread.find((r) => r.system === 'Kiln');
  if (!ks) {
    line(4, `spread (${GOALS.spreadSize} once-a-minute schedules), >= ${GOALS.spreadRan * 100}% run, p99 <= ${GOALS.spreadP99Ms} ms: NOT MEASURED (run the spread part with kiln)`);
  } else {
    const s = summarize(ks.samples);
    const anchors = spread.filter((r) => r.system !== 'Kiln').map((r) => {
      const a = summarize(r.samples);
      return `${r.system} ${pct(a.count, r.expected)}, p99 ${ms(a.p99)} ms (Kiln/${r.system} ${x(s.p99 / a.p99)})`;
    });
    const pass = !ks.error && s.count / ks.expected >= GOALS.spreadRan && s.p99 <= GOALS.spreadP99Ms;
    line(4, `spread (${GOALS.spreadSize} once-a-minute schedules), >= ${GOALS.spreadRan * 100}% of fires run, p99 lateness <= ${GOALS.spreadP99Ms} ms: ` +
      `Kiln ${pct(s.count, ks.expected)} of ${ks.expected} run, p99 ${ms(s.p99)} ms${anchors.length ? `; ${anchors.join('; ')}` : ''} -> ${verdict(pass)}${sizeNote(ks.schedules, GOALS.spreadSize)}`);
  }

  const kh = herd.find((r) => r.system === 'Kiln');
  if (!kh) {
    line(5, `herd (${GOALS.herdSize} jobs due in one second), all FIRED, last RUNNING <= ${GOALS.herdLastMs / 1000} s: NOT MEASURED (run the herd part with kiln)`);
  } else {
    const last = lastStart(kh);
    const lastText = (v: number) => (Number.isFinite(v) ? `${ms(v)} ms` : 'not all by the deadline');
    const anchors = herd.filter((r) => r.system !== 'Kiln').map((r) => `${r.system} last started ${lastText(lastStart(r))}`);
    const pass = !kh.error && kh.fired === kh.jobs && last <= GOALS.herdLastMs;
    line(5, `herd (${GOALS.herdSize} jobs due in one second), every fire recorded FIRED, the last RUNNING within ${GOALS.herdLastMs / 1000} s: ` +
      `Kiln ${kh.fired}/${kh.jobs} FIRED, ${kh.samples.length} started, last ${lastText(last)}${anchors.length ? `; ${anchors.join('; ')}` : ''} -> ${verdict(pass)}${sizeNote(kh.jobs, GOALS.herdSize)}`);
  }

  // Each load of goals 1, 3, 4 and 5 must have had its bystander; the figure is the worst p99.
  const needed = [kt && 'throughput', kl && `lateness x${GOALS.lateSize}`, ks && 'spread', kh && 'herd'].filter(Boolean);
  if (bystander.length === 0) {
    line(6, `bystander p99 <= ${BYSTANDER_GOAL_MS} ms during every load: NOT MEASURED (no Kiln load ran)`);
  } else {
    const worst = bystander.map((b) => ({ load: b.load, p99: b.result ? summarize(b.result.samples).p99 : NaN })).sort((a, b) => worstFirst(b.p99) - worstFirst(a.p99))[0]!;
    const pass = bystander.every((b) => b.result && bystanderPass(b.result));
    const per = bystander.map((b) => `${b.load} ${b.result ? `${ms(summarize(b.result.samples).p99)} ms${b.result.errors ? ` (${b.result.errors} errors)` : ''}` : '-'}`).join(', ');
    const missing = needed.length < 4 ? ' (not every load of goals 1, 3, 4, 5 ran)' : '';
    line(6, `bystander (history query every 100 ms) p99 <= ${BYSTANDER_GOAL_MS} ms during each load: worst ${ms(worst.p99)} ms (${worst.load}); ${per} -> ${verdict(pass)}${missing}`);
  }
}
