import { Readable } from 'node:stream';
import type pg from 'pg';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import type { LogLine } from './LogWriter.js';

/** Where an execution's archived log lives: NDJSON (lossless, for replay) and plain text (for people). */
export function logKeys(executionId: string): { ndjson: string; text: string } {
  return { ndjson: `executions/${executionId}/log.ndjson`, text: `executions/${executionId}/log.txt` };
}

/** One line of the plain-text rendering: Kiln's own lines are marked, the build's are as printed. */
export function renderLine(line: Pick<LogLine, 'stream' | 'text'>): string {
  return line.stream === 'SYSTEM' ? `[kiln] ${line.text}` : line.text;
}

const PAGE = 5000;

/** Reads an execution's stored lines page by page, so a big log never sits whole in memory. */
async function* storedLines(pool: pg.Pool, executionId: string): AsyncGenerator<LogLine> {
  let after = 0;
  for (;;) {
    const { rows } = await pool.query<{ seq: number; stream: LogLine['stream']; step: number | null; text: string; at: Date }>(
      `select seq, stream, step, text, at from log_chunks where execution_id = $1 and seq > $2 order by seq limit $3`,
      [executionId, after, PAGE],
    );
    for (const r of rows) yield r;
    if (rows.length < PAGE) return;
    after = rows[rows.length - 1]!.seq;
  }
}

function streamOf(pool: pg.Pool, executionId: string, format: (l: LogLine) => string): Readable {
  return Readable.from(
    (async function* () {
      for await (const line of storedLines(pool, executionId)) yield format(line) + '\n';
    })(),
  );
}

/**
 * Copies an execution's log from Postgres to the store, both forms. Idempotent: the objects
 * are rewritten whole, so a retry after a partial failure converges.
 */
export async function archiveLogToStore(pool: pg.Pool, store: ArtifactStore, executionId: string): Promise<string> {
  const keys = logKeys(executionId);
  await store.put(
    keys.ndjson,
    streamOf(pool, executionId, (l) => JSON.stringify({ seq: l.seq, stream: l.stream, step: l.step, text: l.text, at: new Date(l.at).toISOString() })),
    { contentType: 'application/x-ndjson' },
  );
  await store.put(keys.text, streamOf(pool, executionId, renderLine), { contentType: 'text/plain; charset=utf-8' });
  return keys.ndjson;
}

/** Parses an archived NDJSON log. */
export function parseArchivedLog(body: string): LogLine[] {
  return body
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const o = JSON.parse(l) as { seq: number; stream: LogLine['stream']; step: number | null; text: string; at: string };
      return { ...o, at: new Date(o.at) };
    });
}
