import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Execution, LogStream } from '../entities/index.js';
import { logKeys, renderLine } from '../logs/archive.js';
import { ObjectNotFoundError } from '../storage/ArtifactStore.js';
import type { Deps } from './deps.js';

const PAGE = 5000;

/**
 * Writes an execution's plain-text log to `out`: the archived copy when there is one, else the
 * lines stored so far in Postgres (a running or not-yet-archived execution).
 */
export async function archivedOrStoredLog(deps: Deps, execution: Execution, out: Writable): Promise<void> {
  if (execution.logKey !== null) {
    try {
      await pipeline(await deps.store.getStream(logKeys(execution.id).text), out);
      return;
    } catch (err) {
      if (!(err instanceof ObjectNotFoundError)) throw err;
    }
  }
  let after = 0;
  for (;;) {
    const { rows } = await deps.pool.query<{ seq: number; stream: LogStream; text: string }>(
      `select seq, stream, text from log_chunks where execution_id = $1 and seq > $2 order by seq limit $3`,
      [execution.id, after, PAGE],
    );
    if (rows.length > 0) out.write(rows.map((r) => renderLine(r) + '\n').join(''));
    if (rows.length < PAGE) break;
    after = rows[rows.length - 1]!.seq;
  }
  out.end();
}
