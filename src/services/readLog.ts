import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Execution } from '../entities/index.js';
import { hasTextObject, logKeys, ndjsonToText, storedNdjsonLog, storedTextLog } from '../logs/archive.js';
import { archivedNdjsonOf } from '../logs/logPacks.js';
import { ObjectNotFoundError } from '../storage/ArtifactStore.js';
import type { Deps } from './deps.js';

/**
 * Writes an execution's plain-text log to `out`: the archived copy when there is one, else the
 * lines stored so far in Postgres (a running or not-yet-archived execution).
 */
export async function archivedOrStoredLog(deps: Deps, execution: Execution, out: Writable): Promise<void> {
  if (execution.logKey !== null) {
    try {
      if (hasTextObject(execution.lastSeq)) {
        await pipeline(await deps.store.getStream(logKeys(execution.id).text), out);
        return;
      }
      const ndjson = await archivedNdjsonOf(deps.pool, deps.store, execution.id);
      if (ndjson !== null) {
        await pipeline(ndjson, ndjsonToText(), out);
        return;
      }
    } catch (err) {
      if (!(err instanceof ObjectNotFoundError)) throw err;
    }
  }
  await pipeline(storedTextLog(deps.pool, execution.id), out);
}

/**
 * Writes an execution's log as NDJSON (`seq stream step text at`, one object per line in seq
 * order; what the build page loads, docs/design.md#build-page): the archived copy when there is
 * one, else the lines stored so far in Postgres.
 */
export async function archivedOrStoredLines(deps: Deps, execution: Execution, out: Writable): Promise<void> {
  if (execution.logKey !== null) {
    try {
      const ndjson = await archivedNdjsonOf(deps.pool, deps.store, execution.id);
      if (ndjson !== null) {
        await pipeline(ndjson, out);
        return;
      }
    } catch (err) {
      if (!(err instanceof ObjectNotFoundError)) throw err;
    }
  }
  await pipeline(storedNdjsonLog(deps.pool, execution.id), out);
}
