import type pg from 'pg';
import type { Fence } from '../../executions/fence.js';
import { markSteps, type StepChange } from '../../executions/steps.js';

/**
 * How long a step change waits for company before it is written while nobody follows the owner
 * (someone who does gets every change at once): a poll of the history sees a step start this late.
 */
const MARK_DELAY_MS = 200;

/**
 * A run's step changes. While some API process follows the owner's events (the claim and every
 * write say so), each change is written at once, in order, so that subscribers see every state
 * (docs/design.md#live-events: `executionUpdated` sends each change). While nobody follows, they are written in
 * batches: a step's start, and its end when it follows soon, cost one statement between them, and
 * whatever is pending when the run ends goes with the finish (take); changes of one step merge
 * (the latest status, the earliest start). A subscriber that starts mid-run may miss a merged
 * intermediate state within one MARK_DELAY_MS.
 */
export class StepMarks {
  private readonly pending = new Map<number, StepChange>();
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();

  private followed: boolean;

  constructor(
    private readonly pool: pg.Pool,
    private readonly fence: Fence & { followed: boolean },
    private readonly onError: (err: Error) => void,
  ) {
    this.followed = fence.followed;
  }

  started(index: number): void {
    this.merge({ index, status: 'RUNNING', exitCode: null, startedAt: new Date(), finishedAt: null });
  }

  ended(index: number, status: 'SUCCEEDED' | 'FAILED', exitCode: number | null): void {
    this.merge({ index, status, exitCode, startedAt: null, finishedAt: new Date() });
  }

  /** The changes not written yet, now the writer's no more (the finish writes them). */
  async take(): Promise<StepChange[]> {
    this.cancelTimer();
    await this.writing;
    const changes = [...this.pending.values()];
    this.pending.clear();
    return changes;
  }

  private merge(change: StepChange): void {
    const before = this.pending.get(change.index);
    this.pending.set(change.index, before ? { ...change, startedAt: before.startedAt ?? change.startedAt } : change);
    if (this.followed) {
      this.cancelTimer();
      this.flush();
    } else {
      this.timer ??= setTimeout(() => this.flush(), MARK_DELAY_MS);
    }
  }

  private flush(): void {
    this.timer = null;
    const changes = [...this.pending.values()];
    this.pending.clear();
    this.writing = this.writing
      .then(async () => {
        this.followed = (await markSteps(this.pool, this.fence, changes)).followed;
      })
      .catch((err: Error) => {
        // Kept for the finish, unless a newer change of the same step came meanwhile.
        for (const c of changes) if (!this.pending.has(c.index)) this.pending.set(c.index, c);
        this.onError(err);
      });
  }

  private cancelTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
