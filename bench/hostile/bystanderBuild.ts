import { sleep } from '../lib/stats.js';
import { generatorJob, nowUs } from '../logs/generator.js';
import { Latencies, subscribe, type SubscriberResult } from '../logs/subscribers.js';
import type { HostileContext } from './context.js';
import { type Execution, submitOneOff, waitWhile } from './executions.js';

/**
 * The bystander's build: during each phase user B runs a build that prints a stamped line every
 * 100 ms and follows its log live over graphql-ws, as `kiln logs --follow` would. It shows what
 * an attack does to another user's running build: its lines' latency, whether its subscription
 * is accepted, and whether it ends as attempt 1 (a lost lease re-runs it).
 */

const LINES_PER_SECOND = 10;

/** Latencies of lines stamped after `sinceUs` only: lines replayed on subscribing are not live. */
class LiveLatencies extends Latencies {
  constructor(private readonly sinceUs: number) {
    super();
  }

  override add(ms: number): void {
    if (nowUs() - ms * 1000 >= this.sinceUs) super.add(ms);
  }
}

export interface BuildResult {
  /** Live lines' latency: container stamp -> received by the follower, ms. */
  latencies: Latencies;
  /** Lines the build printed while followed during the phase (LINES_PER_SECOND from the follow on). */
  expectedLines: number;
  /** Of those, the lines the follower had received when the phase ended. */
  receivedInPhase: number;
  /** null when following was refused or failed (with why). */
  followError: string | null;
  followed: SubscriberResult | null;
  final: Execution;
}

/** B's build of one phase, from before the attack until it is over. */
export class BystanderBuild {
  private follower: ReturnType<typeof subscribe> | null = null;
  private followError: string | null = null;
  private latencies = new Latencies();
  private followedAt = 0;
  private measuredUntil = 0;
  private receivedInPhase = 0;

  private constructor(private readonly executionId: string) {}

  /** Submits the build (long enough to outlast the attack) and waits until it runs. */
  static async start(ctx: HostileContext, label: string): Promise<BystanderBuild> {
    const total = Math.ceil((ctx.windowMs / 1000 + 2) * LINES_PER_SECOND);
    const id = await submitOneOff(ctx.url, ctx.b, generatorJob(`Ticker-${label}`, ctx.image, { rate: LINES_PER_SECOND, total, burst: 1 }));
    const e = await waitWhile(ctx.url, ctx.b, id, ['QUEUED'], 60_000);
    if (e.status !== 'RUNNING') throw new Error(`B's build did not start: ${e.status} ${e.error ?? ''}`);
    return new BystanderBuild(id);
  }

  /** Subscribes to the build's log now; a refused upgrade is recorded, not thrown. */
  follow(ctx: HostileContext): void {
    this.followedAt = performance.now();
    this.latencies = new LiveLatencies(nowUs());
    this.follower = subscribe(ctx.url, ctx.b.token, this.executionId, this.latencies);
    this.follower.ready.catch((err: Error) => (this.followError = err.message.slice(0, 80)));
  }

  /** The end of the measured phase: lines printed after it are not expected. */
  endOfPhase(): void {
    this.measuredUntil = performance.now();
    this.receivedInPhase = this.latencies.count;
  }

  /** Waits (at most `timeoutMs`) for the build to end and the follower to complete. */
  async finish(ctx: HostileContext, timeoutMs: number): Promise<BuildResult> {
    const final = await waitWhile(ctx.url, ctx.b, this.executionId, ['QUEUED', 'RUNNING'], timeoutMs);
    const followed = this.follower ? await Promise.race([this.follower.done, sleep(5000).then(() => null)]) : null;
    if (followed && !followed.completed && this.followError === null) this.followError = followed.error ?? 'closed before the log ended';
    const expectedLines = this.followedAt ? Math.ceil(((this.measuredUntil - this.followedAt) / 1000) * LINES_PER_SECOND) : 0;
    return { latencies: this.latencies, expectedLines, receivedInPhase: this.receivedInPhase, followError: this.followError, followed, final };
  }
}
