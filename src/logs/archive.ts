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

/** Lines per page read from Postgres while archiving. */
const PAGE = 10_000;

/**
 * One page of archived lines as Postgres makes them ($1 execution, seqs in ($2, $3]): NDJSON
 * (lossless; `row_to_json` writes it as compactly as JSON.stringify) or the plain text of renderLine.
 */
const PAGE_SQL = {
  ndjson: `select string_agg(row_to_json(l)::text || chr(10), '' order by l.seq) as lines
             from (select seq, stream, step, text, to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at
                     from log_chunks where execution_id = $1 and seq > $2 and seq <= $3) as l`,
  text: `select string_agg(case when stream = 'SYSTEM' then '[kiln] ' || text else text end || chr(10), '' order by seq) as lines
           from log_chunks where execution_id = $1 and seq > $2 and seq <= $3`,
} as const;

/**
 * An execution's stored lines in one archive format, page by page (each page one string with a
 * newline after every line), so a big log never sits whole in memory. Postgres formats the lines:
 * a million of them cost a few hundred strings in Node, not millions of objects.
 *
 * Seqs are gapless, so pages are seq ranges rather than LIMITs: right after a big run the table's
 * statistics are stale, and a range keeps every page an index range scan whatever the planner
 * believes.
 */
async function* storedPages(pool: pg.Pool, executionId: string, format: keyof typeof PAGE_SQL): AsyncGenerator<string> {
  const { rows } = await pool.query<{ last_seq: number }>(`select last_seq from executions where id = $1`, [executionId]);
  const last = rows[0]?.last_seq ?? 0;
  for (let after = 0; after < last; after += PAGE) {
    const { rows: [page] } = await pool.query<{ lines: string | null }>(PAGE_SQL[format], [executionId, after, Math.min(after + PAGE, last)]);
    if (page?.lines) yield page.lines;
  }
}

/** The plain-text log of the lines stored so far in Postgres (a log not archived yet). */
export function storedTextLog(pool: pg.Pool, executionId: string): Readable {
  return Readable.from(storedPages(pool, executionId, 'text'));
}

/**
 * Copies an execution's log from Postgres to the store, both forms. Idempotent: the objects
 * are rewritten whole, so a retry after a partial failure converges.
 */
export async function archiveLogToStore(pool: pg.Pool, store: ArtifactStore, executionId: string): Promise<string> {
  const keys = logKeys(executionId);
  await store.put(keys.ndjson, Readable.from(storedPages(pool, executionId, 'ndjson')), { contentType: 'application/x-ndjson' });
  await store.put(keys.text, Readable.from(storedPages(pool, executionId, 'text')), { contentType: 'text/plain; charset=utf-8' });
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
