import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Execution } from '../entities/index.js';
import { hasTextObject, logKeys, ndjsonToText, storedTextLog } from '../logs/archive.js';
import { ObjectNotFoundError } from '../storage/ArtifactStore.js';
import type { Deps } from './deps.js';

/**
 * Writes an execution's plain-text log to `out`: the archived copy when there is one, else the
 * lines stored so far in Postgres (a running or not-yet-archived execution).
 */
export async function archivedOrStoredLog(deps: Deps, execution: Execution, out: Writable): Promise<void> {
  if (execution.logKey !== null) {
    try {
      const keys = logKeys(execution.id);
      if (hasTextObject(execution.lastSeq)) await pipeline(await deps.store.getStream(keys.text), out);
      else await pipeline(await deps.store.getStream(keys.ndjson), ndjsonToText(), out);
      return;
    } catch (err) {
      if (!(err instanceof ObjectNotFoundError)) throw err;
    }
  }
  await pipeline(storedTextLog(deps.pool, execution.id), out);
}
