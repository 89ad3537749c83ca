import { PeakRss } from '../lib/rss.js';
import { sleep, summarize, type Summary } from '../lib/stats.js';
import { Bystander } from '../schedule/bystander.js';
import type { BystanderResult } from '../schedule/common.js';
import { post } from './api.js';
import { BystanderBuild, type BuildResult } from './bystanderBuild.js';
import type { Attack, AttackReport, HostileContext } from './context.js';

/**
 * One phase of the hostile benchmark: B's build running and followed, B's history query every
 * 100 ms and the server's tree RSS sampled every 100 ms, while A attacks for at most one window.
 * The bystander is measured from the attack's start to its end (at least MIN_PHASE_MS).
 */

const MIN_PHASE_MS = 3000;
/** B starts following its build this long into the attack, so a refusal of new sockets shows (a flood has emptied a bucket by then). */
export const FOLLOW_AFTER_MS = 3000;
/** How long after the attack B's build may take to end (it prints for the window and 2 s more). */
const BUILD_END_MS = 20_000;
/** The same after the last phase, which nothing waits for. */
const LAST_BUILD_END_MS = 10_000;

export interface PhaseResult {
  label: string;
  name: string;
  /** "not measured: ..." when the attack declined; nothing else is set then. */
  notMeasured?: string;
  attack?: AttackReport;
  bystander?: BystanderResult;
  /** B's query latencies, failed and skipped queries counted as infinitely late. */
  history?: Summary;
  build?: BuildResult;
  /** Tree RSS before the phase and its peak during, MiB. */
  rssBefore?: number;
  rssPeak?: number;
  durationMs?: number;
  /** What the attack's preparation took (a build, stored secrets), not measured. */
  prepareMs?: number;
  /** Set when the phase failed as a whole (a crash of the server, a setup error). */
  error?: string;
  /** Set when the attack was stopped before its end because the server's RSS passed the cap. */
  capped?: boolean;
  /** How the server was after the phase: "ready in 0.1 s", or "restarted: ...". */
  recovery?: string;
}

/** Whether /healthz answers within 1 s. */
async function healthy(url: string): Promise<boolean> {
  const a = await post(`${url}/healthz`, { signal: AbortSignal.timeout(1000) }).catch(() => null);
  return a?.status === 200;
}

/** Waits up to `recoverMs` for the server to answer again; otherwise restarts it (same database). */
async function recover(ctx: HostileContext, recoverMs: number): Promise<{ restarted: boolean; note: string }> {
  const t0 = performance.now();
  while (performance.now() - t0 < recoverMs && ctx.server.child.exitCode === null) {
    if (await healthy(ctx.url)) return { restarted: false, note: `answering /healthz ${((performance.now() - t0) / 1000).toFixed(1)} s after the attack` };
    await sleep(500);
  }
  const why = ctx.server.child.exitCode !== null ? `the server had exited (${ctx.server.child.exitCode})` : `no /healthz answer within ${recoverMs / 1000} s`;
  await ctx.restart();
  return { restarted: true, note: `${why}: restarted (B's build below as the new server found it)` };
}

/**
 * Runs one phase. After the attack the server gets `recoverMs` to answer again (else it is
 * restarted) so that the next phase starts from a server that answers; the last phase skips that.
 */
export async function runPhase(ctx: HostileContext, attack: Attack, index: number, opts: { recoverMs: number; last: boolean }): Promise<PhaseResult> {
  const result: PhaseResult = { label: attack.label, name: attack.name };
  let build: BystanderBuild | null = null;
  try {
    const declined = await attack.probe?.(ctx);
    if (declined) return { ...result, notMeasured: declined };
    const p0 = performance.now();
    await attack.prepare?.(ctx);
    if (attack.prepare) result.prepareMs = performance.now() - p0;
    build = await BystanderBuild.start(ctx, String(index));
    await measure(ctx, attack, build, result);
    const recovered = opts.last ? null : await recover(ctx, opts.recoverMs);
    result.recovery = recovered?.note;
    await attack.cleanup?.(ctx).catch(() => undefined);
    result.build = await build.finish(ctx, recovered?.restarted ? 0 : opts.last ? LAST_BUILD_END_MS : BUILD_END_MS);
  } catch (err) {
    result.error = (err as Error).message.slice(0, 200);
  }
  return result;
}

/** The attack with B looking on: fills in the bystander's, the attack's and the RSS figures. */
async function measure(ctx: HostileContext, attack: Attack, build: BystanderBuild, result: PhaseResult): Promise<void> {
  const rss = new PeakRss(ctx.server.child.pid!);
  result.rssBefore = rss.mb;
  const bystander = Bystander.start(ctx.url, ctx.b.token);
  const abort = new AbortController();
  const window = setTimeout(() => abort.abort(), ctx.windowMs);
  const t0 = performance.now();
  const followTimer = setTimeout(() => build.follow(ctx), FOLLOW_AFTER_MS);
  const capWatch = setInterval(() => {
    if (rss.mb <= ctx.rssCapMb || abort.signal.aborted) return;
    result.capped = true;
    abort.abort();
  }, 100);
  try {
    result.attack = await attack.run(ctx, abort.signal);
    await sleep(MIN_PHASE_MS - (performance.now() - t0));
  } finally {
    clearTimeout(window);
    clearTimeout(followTimer);
    clearInterval(capWatch);
    result.durationMs = performance.now() - t0;
    build.endOfPhase();
    result.bystander = await bystander.stop();
    // A query that failed or was never sent (50 unanswered) counts as infinitely late.
    const { samples, errors, skipped } = result.bystander;
    result.history = summarize([...samples, ...new Array<number>(errors + skipped).fill(Number.POSITIVE_INFINITY)]);
    result.rssPeak = rss.stop();
  }
}
