import { ms, ratio, table } from '../lib/stats.js';
import { BYSTANDER_EVERY_MS } from '../schedule/bystander.js';
import { FOLLOW_AFTER_MS, type PhaseResult } from './phase.js';

/** The hostile benchmark's report: one row per phase, each beside the baseline (the first phase). */

/** A latency cell; "failed" where the percentile falls on a failed or skipped query. */
const late = (v: number) => (v === Number.POSITIVE_INFINITY ? 'failed' : ms(v));
const lateMs = (v: number) => (v === Number.POSITIVE_INFINITY ? 'failed' : `${ms(v)} ms`);
const mib = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(0));

function refusedCell(r: PhaseResult): string {
  if (r.notMeasured) return '-';
  const refusals = r.attack?.tally.refusals;
  if (!refusals || refusals.size === 0) return r.attack?.tally.failed ? 'socket errors' : 'no';
  // The kinds of refusal, most frequent first: "429 x349, 401 x444" (HTTP status, or the GraphQL code).
  const kinds = new Map<string, number>();
  for (const [why, n] of refusals) {
    const kind = /^HTTP (\d+)/.exec(why)?.[1] ?? why.split(':')[0]!.slice(0, 24);
    kinds.set(kind, (kinds.get(kind) ?? 0) + n);
  }
  return [...kinds].sort((x, y) => y[1] - x[1]).slice(0, 2).map(([k, n]) => `${k} x${n}`).join(', ');
}

function liveCells(r: PhaseResult): [string, string, string] {
  if (!r.build) return ['-', '-', '-'];
  if (r.build.followError) return [/\b4\d\d\b|4403/.test(r.build.followError) ? 'refused' : 'failed', '-', '-'];
  const s = r.build.latencies.summary();
  return [`${r.build.receivedInPhase}/${r.build.expectedLines}`, ms(s.p50), ms(s.p99)];
}

export function printReport(phases: PhaseResult[]): void {
  const base = phases[0];
  console.log(`\n## Bystander B while A attacks: B's history query every ${BYSTANDER_EVERY_MS} ms, B's build followed live, server RSS (ms, MiB)\n`);
  const rows = [['phase', 'refused?', 'B history p50', 'p99', 'p99 vs baseline', 'errors', 'B live lines', 'p50', 'p99', "B's build", 'peak RSS', 'grew', 'vs baseline']];
  for (const r of phases) {
    if (r.notMeasured || r.error) {
      rows.push([r.label, r.notMeasured ? 'not measured' : 'ERROR', ...new Array<string>(11).fill('-')]);
      continue;
    }
    const b = r.bystander!;
    const build = r.build ? `${r.build.final.status} #${r.build.final.attempt}` : '-';
    const errors = b.errors + b.skipped === 0 ? '0' : `${b.errors}+${b.skipped} skipped`;
    const vsRss = r === base || base?.rssPeak === undefined ? '' : `+${(r.rssPeak! - base.rssPeak).toFixed(0)}`;
    const vsP99 = r === base ? '' : ratio(r.history!.p99, base?.history?.p99 ?? NaN);
    const grew = (r.rssPeak! - r.rssBefore!).toFixed(0);
    rows.push([r.label, refusedCell(r), late(r.history!.p50), late(r.history!.p99), vsP99, errors, ...liveCells(r), build, mib(r.rssPeak), grew, vsRss]);
  }
  console.log(table(rows));
  console.log(`(B history: \`executions(first: 20)\` over HTTP as B, latency from each intended send time, ms; a query that failed or was skipped`);
  console.log(' counts as infinitely late ("failed" where a percentile falls on one); "errors": failed + skipped (50 unanswered); "p99 vs baseline": over the');
  console.log(` baseline's p99. B live lines: lines B's build printed while B followed it (from ${FOLLOW_AFTER_MS / 1000} s into the attack, 10 a second), received by the`);
  console.log(' end of the phase / printed; p50/p99: container stamp -> line received on B\'s graphql-ws subscription, ms; "refused": the upgrade or');
  console.log(' subscription was refused, "failed": it broke. B\'s build: status and attempt (#2 = it lost its lease and ran again). Peak RSS: `kiln start`');
  console.log(' and its children, VmRSS sampled every 100 ms, MiB; "grew": peak minus the RSS at the phase\'s start; "vs baseline": peak minus the baseline\'s.)\n');
  for (const r of phases) printDetail(r);
}

function printDetail(r: PhaseResult): void {
  console.log(`- ${r.name}`);
  if (r.notMeasured) return void console.log(`    ${r.notMeasured}`);
  if (r.error) console.log(`    ERROR: ${r.error}`);
  const t = r.attack?.tally;
  if (r.attack && t) {
    console.log(`    A: ${r.attack.requests ?? t.requestsCell()}; refused: ${t.refusedCell()}`);
    if (t.firstFailure) console.log(`    A's first socket error: ${t.firstFailure.slice(0, 120)}`);
    for (const n of r.attack.notes) console.log(`    ${n}`);
  }
  if (r.capped) console.log('    stopped early: the server\'s RSS passed --rss-cap-mb');
  if (r.bystander?.firstError) console.log(`    B's first failed query: ${r.bystander.firstError.slice(0, 120)}`);
  if (r.build?.followError) console.log(`    B's log subscription: ${r.build.followError}`);
  if (r.build?.final.error) console.log(`    B's build: ${r.build.final.error.slice(0, 120)}`);
  if (r.durationMs !== undefined) {
    console.log(`    measured ${(r.durationMs / 1000).toFixed(1)} s: B history max ${lateMs(r.history!.max)} over ${r.bystander!.sent} queries; RSS ${mib(r.rssBefore)} -> peak ${mib(r.rssPeak)} MiB`);
  }
  if (r.prepareMs !== undefined) console.log(`    prepared (not measured) in ${(r.prepareMs / 1000).toFixed(1)} s`);
  if (r.recovery) console.log(`    after: ${r.recovery}`);
}
