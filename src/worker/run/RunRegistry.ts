import type { Fence } from '../../executions/fence.js';

/** Why a run is stopped: its timeout, a cancel request, or its claim lost (or given up at shutdown). */
export type StopReason = 'TIMED_OUT' | 'CANCELLED' | 'LOST';

/** Stops a run (idempotent); the run's ending goes by the first reason it is given. */
export type StopRun = (reason: StopReason, message: string) => void;

/** A claim as it is held: `claimSentAt` (epoch ms, this process's clock) when the claim was sent, if known. */
export type HeldClaim = Fence & { claimSentAt?: number };

interface HeldRun {
  fence: Fence;
  stop: StopRun;
  /** The claim is renewed: from `hold` until it is lost or released. */
  claimed: boolean;
  /** The run has let its claim go: it no longer counts as running. */
  released: boolean;
  cancelled: boolean;
  /** Shutdown callers waiting for the release, told whether the container is confirmed gone. */
  waiters: Array<(containerGone: boolean) => void>;
}

/**
 * The runs this process holds, from their claim until they are over: the one place that knows
 * them. A run is known by its claim (execution and attempt): an attempt whose claim was lost may
 * still be winding down here when this process claims the execution's next attempt. Consulted by
 * - the lease keeper, which renews the claims held and stops the runs whose claims are lost;
 * - the cancel listener, which stops the runs whose cancel is requested;
 * - the orphan reaper, which never touches the containers of runs held here;
 * - shutdown, which stops them all and hands back those whose containers are confirmed gone.
 *
 * A run goes through: held (claim renewed) -> lost (optional: stopped, not renewed) -> released
 * (it let its claim go, saying whether its container is confirmed gone) -> forgotten (over).
 * Invariant: only a run released with its container confirmed gone may be handed to a next
 * attempt at once; any other is left to its lease's expiry (never two attempts at once).
 */
export class RunRegistry {
  /** By `keyOf(fence)`. */
  private readonly runs = new Map<string, HeldRun>();
  private readonly holdListeners: Array<(claim: HeldClaim) => void> = [];
  private stopBy: number | null = null;

  /** Holds the claimed run until `forget`; `stop` is called when it must stop (see StopRun). */
  hold(claim: HeldClaim, stop: StopRun): void {
    const fence: Fence = { id: claim.id, attempt: claim.attempt, workerId: claim.workerId };
    this.runs.set(keyOf(fence), { fence, stop, claimed: true, released: false, cancelled: false, waiters: [] });
    for (const listener of this.holdListeners) listener(claim);
  }

  /** Calls `listener` with each claim held from now on. */
  onHold(listener: (claim: HeldClaim) => void): void {
    this.holdListeners.push(listener);
  }

  /** Whether this process runs an attempt of `executionId` (held, not forgotten): its containers are its own. */
  has(executionId: string): boolean {
    return this.of(executionId).length > 0;
  }

  /** Whether the claim `fence` is still held and renewed (not lost, not released). */
  holds(fence: Fence): boolean {
    const run = this.runs.get(keyOf(fence));
    return run?.claimed === true && !run.released;
  }

  /** The claims to renew. */
  claims(): Fence[] {
    return [...this.runs.values()].filter((r) => r.claimed && !r.released).map((r) => r.fence);
  }

  /** The executions of the runs not forgotten (a cancel may still reach them). */
  ids(): string[] {
    return [...new Set([...this.runs.values()].map((r) => r.fence.id))];
  }

  /** How many runs have not released their claims yet. */
  get size(): number {
    let n = 0;
    for (const run of this.runs.values()) if (!run.released) n++;
    return n;
  }

  /** The claim `fence` is lost: its run stops at once, and the claim is no longer renewed. */
  lose(fence: Fence, reason: string): void {
    const run = this.runs.get(keyOf(fence));
    if (run === undefined || !run.claimed || run.released) return;
    run.claimed = false;
    run.stop('LOST', reason);
  }

  /** A cancel of `executionId` was requested: its runs stop, once. Returns whether it runs here. */
  cancel(executionId: string): boolean {
    const runs = this.of(executionId);
    for (const run of runs) {
      if (run.cancelled) continue;
      run.cancelled = true;
      run.stop('CANCELLED', 'cancelled');
    }
    return runs.length > 0;
  }

  /**
   * The run lets its claim go; `containerGone` says whether its container is confirmed removed (or
   * never existed): only then may it be handed to a next attempt at once. The first call counts.
   */
  release(fence: Fence, containerGone = true): void {
    const run = this.runs.get(keyOf(fence));
    if (run === undefined || run.released) return;
    run.released = true;
    for (const ended of run.waiters.splice(0)) ended(containerGone);
  }

  /** The run is over. Not released before, it counts as one whose container may still run. */
  forget(fence: Fence): void {
    this.release(fence, false);
    this.runs.delete(keyOf(fence));
  }

  /**
   * The process shuts down and must be gone by `deadline` (epoch ms): runs waiting for their
   * containers to be removed stop waiting then. Earlier deadlines win.
   */
  private shutDownBy(deadline: number): void {
    this.stopBy = this.stopBy === null ? deadline : Math.min(this.stopBy, deadline);
  }

  /** When the process must be done (epoch ms) once it shuts down; null until then. */
  get shutdownDeadline(): number | null {
    return this.stopBy;
  }

  /**
   * Stops every run not released yet as if its claim were lost (its container is destroyed at
   * once and it ends without an outcome), but keeps renewing the claims meanwhile. Resolves,
   * within `waitMs`, with the fences of the runs released with their containers confirmed gone:
   * those are the ones to hand back. A run whose container could not be removed by then is not
   * among them: it stops trying at the deadline and its lease is left to expire.
   * Several callers may stop the same runs (the drain and a shortened grace): each is told.
   */
  async stopAll(reason: string, waitMs: number): Promise<Fence[]> {
    // Runs end a moment before the wait does, so a run that gives up is not mistaken for one still going.
    this.shutDownBy(Date.now() + Math.max(0, waitMs - 1000));
    const running = [...this.runs.values()].filter((r) => !r.released);
    const ended: Fence[] = [];
    await Promise.all(
      running.map(
        (run) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, waitMs);
            run.waiters.push((containerGone) => {
              clearTimeout(timer);
              if (containerGone) ended.push(run.fence);
              resolve();
            });
            run.stop('LOST', reason);
          }),
      ),
    );
    return ended;
  }

  private of(executionId: string): HeldRun[] {
    return [...this.runs.values()].filter((r) => r.fence.id === executionId);
  }
}

function keyOf(fence: Fence): string {
  return `${fence.id}#${fence.attempt}`;
}
