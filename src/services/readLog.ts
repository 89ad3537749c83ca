import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Execution } from '../entities/index.js';
import { logKeys, storedNdjsonLog, storedTextLog } from '../logs/archive.js';
import { ObjectNotFoundError } from '../storage/ArtifactStore.js';
import type { Deps } from './deps.js';

/**
 * Writes an execution's log to `out`, as plain text or as NDJSON (`seq stream step text at` per
 * line, what the build page loads: docs/design.md#build-page): the archived copy when there is one, else the
 * lines stored so far in Postgres (a running or not-yet-archived execution).
 */
export async function archivedOrStoredLog(deps: Deps, execution: Execution, out: Writable, format: 'text' | 'ndjson' = 'text'): Promise<void> {
  if (execution.logKey !== null) {
    try {
      await pipeline(await deps.store.getStream(logKeys(execution.id)[format]), out);
      return;
    } catch (err) {
      if (!(err instanceof ObjectNotFoundError)) throw err;
    }
  }
  await pipeline(format === 'text' ? storedTextLog(deps.pool, execution.id) : storedNdjsonLog(deps.pool, execution.id), out);
}
