import type pg from 'pg';
import type { Log } from '../util/log.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import { ARCHIVE_BATCH, archiveDue } from '../tasks/archive-log.js';

/**
 * How long a woken archiver waits before its round, so that the logs of runs finishing meanwhile
 * share the round's statements and its pack (docs/design.md#archives) instead of a round each.
 */
const GATHER_MS = 200;

/**
 * A worker's archiving loop: rounds of archiveDue while they come back full, started when a run of
 * this process finishes (`wake`) and every `pollMs` (other workers' runs, retries after the store
 * failed, archives a dead worker had taken). Archiving never holds a run back: the finish only
 * marks the archive due.
 */
export class Archiver {
  private timer: NodeJS.Timeout | null = null;
  /** A round about to start: the runs that finish meanwhile join it (see GATHER_MS). */
  private gathering: NodeJS.Timeout | null = null;
  private round: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly store: ArtifactStore,
    private readonly log: Log,
    private readonly pollMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.wake(), this.pollMs);
    this.timer.unref();
    this.wake();
  }

  wake(): void {
    if (this.stopped) return;
    if (this.round !== null) {
      this.again = true;
      return;
    }
    if (this.gathering !== null) return;
    this.gathering = setTimeout(() => {
      this.gathering = null;
      this.round = this.drain().finally(() => {
        this.round = null;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
    }, GATHER_MS);
  }

  /** Stops after the round in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    if (this.gathering !== null) clearTimeout(this.gathering);
    await this.round;
  }

  private async drain(): Promise<void> {
    try {
      while (!this.stopped && (await archiveDue(this.pool, this.store, this.log)) === ARCHIVE_BATCH);
    } catch (err) {
      this.log(`archiver: ${(err as Error).message}`, { level: 'warn', err });
    }
  }
}
