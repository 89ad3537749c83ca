import { PeakRss } from '../lib/rss.js';
import { sleep, summarize, type Summary } from '../lib/stats.js';
import { Bystander } from '../schedule/bystander.js';
import type { BystanderResult } from '../schedule/common.js';
import { BystanderBuild, type BuildResult } from './bystanderBuild.js';
import type { Attack, AttackReport, HostileContext } from './context.js';

/**
 * One phase of the hostile benchmark: B's build running and followed, B's history query every
 * 100 ms and the server's tree RSS sampled every 100 ms, while A attacks for at most one window.
 * The bystander is measured from the attack's start to its end (at least MIN_PHASE_MS).
 */

const MIN_PHASE_MS = 3000;
/** B starts following its build this long into the attack, so a refusal of new sockets shows. */
const FOLLOW_AFTER_MS = 1000;
/** How long after the attack B's build may take to end (it prints for the window and 2 s more). */
const BUILD_END_MS = 20_000;

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

export async function runPhase(ctx: HostileContext, attack: Attack, index: number): Promise<PhaseResult> {
  const result: PhaseResult = { label: attack.label, name: attack.name };
  try {
    const declined = await attack.probe?.(ctx);
    if (declined) return { ...result, notMeasured: declined };
    const p0 = performance.now();
    await attack.prepare?.(ctx);
    if (attack.prepare) result.prepareMs = performance.now() - p0;
    const build = await BystanderBuild.start(ctx, String(index));
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
      result.bystander = await bystander.stop();
      // A query that failed or was never sent (50 unanswered) counts as infinitely late.
      const { samples, errors, skipped } = result.bystander;
      result.history = summarize([...samples, ...new Array<number>(errors + skipped).fill(Number.POSITIVE_INFINITY)]);
      result.rssPeak = rss.stop();
    }
    result.build = await build.finish(ctx, BUILD_END_MS);
  } catch (err) {
    result.error = (err as Error).message.slice(0, 200);
  } finally {
    await attack.cleanup?.(ctx).catch(() => undefined);
  }
  return result;
}
