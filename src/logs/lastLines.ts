import type pg from 'pg';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import { renderLine } from './archive.js';
import { StoredLogReader } from './StoredLogReader.js';

/** Longest line kept, in characters: a notification quotes a log, it does not carry it. */
const MAX_LINE_CHARS = 1000;

/**
 * The last `count` lines of an execution's stored log, rendered as the plain-text log shows them
 * (Kiln's own lines marked `[kiln]`), each cut at MAX_LINE_CHARS: from Postgres, or from the
 * archive once the chunks were pruned (StoredLogReader). Stored lines were masked when written.
 * [] for an execution without lines (or without a row).
 */
export async function lastLogLines(pool: pg.Pool, store: ArtifactStore, executionId: string, count: number): Promise<string[]> {
  const { rows } = await pool.query<{ last_seq: number }>(`select last_seq from executions where id = $1`, [executionId]);
  const lastSeq = rows[0]?.last_seq ?? 0;
  if (lastSeq === 0) return [];
  const reader = new StoredLogReader(pool, store, executionId);
  try {
    const lines = await reader.readAfter(Math.max(0, lastSeq - count), count);
    return lines.map((l) => {
      const text = renderLine(l);
      return text.length > MAX_LINE_CHARS ? `${text.slice(0, MAX_LINE_CHARS)}…` : text;
    });
  } finally {
    await reader.close();
  }
}
