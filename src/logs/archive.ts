import { Readable, Transform } from 'node:stream';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { copyFields, uuidBytes } from './copyBinary.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import type { LogChunkFields } from '../entities/LogChunk.js';

/** Where an execution's archived log lives: NDJSON (lossless, for replay) and plain text (for people). */
export function logKeys(executionId: string): { ndjson: string; text: string } {
  return { ndjson: `executions/${executionId}/log.ndjson`, text: `executions/${executionId}/log.txt` };
}

/** Logs of at most this many lines are archived in batches, as NDJSON only (docs/design.md#archives). */
export const SMALL_LOG_LINES = 2000;

/**
 * Whether an archived log has a plain-text object of its own (to be downloaded straight from the
 * store): only big ones do. A small log's text is rendered from its NDJSON when read: one object
 * per log halves what the worker writes for the many small ones.
 */
export function hasTextObject(lastSeq: number): boolean {
  return lastSeq > SMALL_LOG_LINES;
}

/** Renders an archived NDJSON stream as the plain text of renderLine, line by line. */
export function ndjsonToText(): Transform {
  let rest = '';
  const render = (line: string) => (line.length === 0 ? '' : `${renderLine(JSON.parse(line) as Pick<LogChunkFields, 'stream' | 'text'>)}\n`);
  return new Transform({
    decodeStrings: true,
    transform(chunk: Buffer, _enc, done) {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop() ?? '';
      try {
        done(null, lines.map(render).join(''));
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done) {
      try {
        done(null, render(rest));
      } catch (err) {
        done(err as Error);
      }
    },
  });
}

/** One line of the plain-text rendering: Kiln's own lines are marked, the build's are as printed. */
export function renderLine(line: Pick<LogChunkFields, 'stream' | 'text'>): string {
  return line.stream === 'SYSTEM' ? `[kiln] ${line.text}` : line.text;
}

/** Lines per COPY while archiving: each is an index range scan of the primary key. */
const PAGE = 100_000;
/** Lines per row of the COPY: Postgres joins them, so a million lines are a thousand messages. */
const ROW = 1000;

/**
 * One page of archived lines as Postgres makes them (seqs in (after, upTo]): NDJSON (lossless;
 * `row_to_json` writes it as compactly as JSON.stringify) or the plain text of renderLine, each
 * line followed by a newline, ROW lines to a row, rows in seq order. COPY takes no parameters:
 * the id is checked to be a UUID and the bounds to be integers before they are written in.
 */
function pageCopySql(format: 'ndjson' | 'text', executionId: string, after: number, upTo: number): string {
  uuidBytes(executionId); // throws unless a UUID: nothing else may be spliced into the SQL
  if (!Number.isSafeInteger(after) || !Number.isSafeInteger(upTo)) throw new Error(`bad seq range ${after}..${upTo}`);
  const range = `execution_id = '${executionId}' and seq > ${after} and seq <= ${upTo}`;
  const [columns, line] =
    format === 'ndjson'
      ? [`seq, stream, step, text, to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at`, `row_to_json(l)::text`]
      : [`seq, stream, text`, `case when l.stream = 'SYSTEM' then '[kiln] ' || l.text else l.text end`];
  return `copy (select string_agg(${line} || chr(10), '' order by l.seq)
                  from (select ${columns} from log_chunks where ${range}) as l
                 group by (l.seq - 1) / ${ROW} order by (l.seq - 1) / ${ROW}) to stdout (format binary)`;
}

/**
 * An execution's stored lines in one archive format, as bytes streamed from Postgres by COPY, so
 * that a big log never sits whole in memory, and neither do strings of it: Postgres formats the
 * lines, and this process only passes buffers through.
 *
 * Seqs are gapless, so pages are seq ranges rather than LIMITs: right after a big run the table's
 * statistics are stale, and a range keeps every page an index range scan whatever the planner
 * believes.
 */
async function* storedBytes(pool: pg.Pool, executionId: string, format: 'ndjson' | 'text'): AsyncGenerator<Buffer> {
  const { rows } = await pool.query<{ last_seq: number }>(`select last_seq from executions where id = $1`, [executionId]);
  const last = rows[0]?.last_seq ?? 0;
  for (let after = 0; after < last; after += PAGE) {
    const client = await pool.connect();
    let done = false;
    try {
      yield* copyFields(client.query(copyTo(pageCopySql(format, executionId, after, Math.min(after + PAGE, last)))));
      done = true;
    } finally {
      // A COPY left unfinished (the reader stopped, or failed) leaves the connection unusable.
      client.release(done ? undefined : true);
    }
  }
}

/** The plain-text log of the lines stored so far in Postgres (a log not archived yet). */
export function storedTextLog(pool: pg.Pool, executionId: string): Readable {
  return Readable.from(storedBytes(pool, executionId, 'text'), { objectMode: false });
}

/** The lines stored so far in Postgres as the archive's NDJSON, one object per line in seq order. */
export function storedNdjsonLog(pool: pg.Pool, executionId: string): Readable {
  return Readable.from(storedBytes(pool, executionId, 'ndjson'), { objectMode: false });
}

/**
 * Copies an execution's log from Postgres to the store, both forms. Idempotent: the objects
 * are rewritten whole, so a retry after a partial failure converges.
 */
export async function archiveLogToStore(pool: pg.Pool, store: ArtifactStore, executionId: string): Promise<string> {
  const keys = logKeys(executionId);
  await store.put(keys.ndjson, Readable.from(storedBytes(pool, executionId, 'ndjson'), { objectMode: false }), { contentType: 'application/x-ndjson' });
  await store.put(keys.text, Readable.from(storedBytes(pool, executionId, 'text'), { objectMode: false }), { contentType: 'text/plain; charset=utf-8' });
  return keys.ndjson;
}

/** Parses an archived NDJSON log. */
export function parseArchivedLog(body: string): LogChunkFields[] {
  return body
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const o = JSON.parse(l) as { seq: number; stream: LogChunkFields['stream']; step: number | null; text: string; at: string };
      return { ...o, at: new Date(o.at) };
    });
}
