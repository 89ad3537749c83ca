import type pg from 'pg';
import type { Log } from '../util/log.js';
import { RoundLoop } from '../util/roundLoop.js';
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
  private readonly rounds: RoundLoop;

  constructor(
    private readonly pool: pg.Pool,
    private readonly store: ArtifactStore,
    private readonly log: Log,
    pollMs: number,
  ) {
    this.rounds = new RoundLoop(() => this.drain(), pollMs, GATHER_MS);
  }

  start(): void {
    this.rounds.start();
  }

  wake(): void {
    this.rounds.wake();
  }

  /** Stops after the round in flight. */
  stop(): Promise<void> {
    return this.rounds.stop();
  }

  private async drain(): Promise<void> {
    try {
      while (!this.rounds.stopped && (await archiveDue(this.pool, this.store, this.log)) === ARCHIVE_BATCH);
    } catch (err) {
      this.log(`archiver: ${(err as Error).message}`, { level: 'warn', err });
    }
  }
}
