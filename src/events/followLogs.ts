import type { EntityManager } from '@mikro-orm/postgresql';
import { NotFoundError, ValidationError } from '../errors.js';
import type { LogChunkFields } from '../entities/LogChunk.js';
import { findExecution } from '../services/findOwned.js';
import type { EventHub } from './EventHub.js';
import { LogGapError } from '../logs/StoredLogReader.js';

/** Lines handed to the transport per step; also the most a subscriber ever holds itself. */
const PAGE = 500;

/**
 * `executionLogs`: checks that the execution is the owner's, then streams every line with
 * seq > `afterSeq`: first what is stored, then live, and completes after the last line of a
 * finished execution.
 */
export async function followExecutionLogs(
  em: EntityManager,
  hub: EventHub,
  owner: string,
  executionId: string,
  afterSeq: number | null | undefined,
): Promise<AsyncGenerator<LogChunkFields>> {
  const after = afterSeq ?? 0;
  if (!Number.isInteger(after) || after < 0) throw new ValidationError('afterSeq must be a non-negative integer');
  const execution = await findExecution(em, owner, executionId);
  if (execution === null) throw new NotFoundError('execution', executionId);
  return logLinesAfter(hub, execution.id, after, owner);
}

/**
 * The stream itself. One cursor, `cursor` = the last seq delivered, decides every step:
 * - the shared tail holds `cursor + 1`: take from it;
 * - `cursor + 1` is older than the tail: read storage (Postgres, else the archive);
 * - caught up: complete if the run is over and its last line delivered, else wait for the tail.
 * Since the cursor only moves by exactly the seqs delivered and both sources are gapless, the
 * switch from replay to live can neither skip nor repeat a line. The generator pulls only when
 * the transport has sent the previous line, so a slow socket is a paused cursor, not a queue.
 */
export async function* logLinesAfter(hub: EventHub, executionId: string, afterSeq: number, owner: string): AsyncGenerator<LogChunkFields> {
  // Followed before the tail first reads: every line stored after that is notified.
  const unfollow = await hub.interest.hold(owner);
  const lease = hub.acquireTail(executionId);
  const reader = hub.storedLogReader(executionId);
  let cursor = afterSeq;
  try {
    const tail = lease.tail;
    await tail.ready;
    for (;;) {
      const live = tail.linesAfter(cursor, PAGE);
      if (live.length > 0) {
        for (const line of live) {
          yield line;
          cursor = line.seq;
        }
        continue;
      }
      if (cursor + 1 < tail.firstSeq) {
        const stored = await reader.readAfter(cursor, Math.min(PAGE, tail.firstSeq - 1 - cursor));
        if (stored.length === 0) throw new LogGapError(executionId, cursor);
        for (const line of stored) {
          yield line;
          cursor = line.seq;
        }
        continue;
      }
      const finalSeq = tail.finalSeq;
      if (finalSeq !== null && cursor >= finalSeq) return;
      await tail.changed();
    }
  } finally {
    lease.release();
    unfollow();
    await reader.close();
  }
}
