import type pg from 'pg';
import { ValidationError } from '../errors.js';
import { StoredLogReader } from '../logs/StoredLogReader.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import { isUuid } from './paging.js';

/** Matches one search answers at most (and by default): a page, not the whole log. */
export const MAX_LOG_SEARCH_MATCHES = 1000;
export const DEFAULT_LOG_SEARCH_MATCHES = 100;
/** The longest text a search looks for. */
export const MAX_LOG_SEARCH_QUERY = 256;
/**
 * Lines one search reads at most, and their bytes at most: a request's work is bounded whatever
 * the log, and a longer log is searched window by window from `scannedThrough`
 * (docs/design.md#log-search).
 */
export const LOG_SEARCH_SCAN_LINES = 250_000;
export const LOG_SEARCH_SCAN_BYTES = 64 * 1024 * 1024;
/** Lines read per page from an archive. */
const ARCHIVE_PAGE = 10_000;

/** A line that contains the text searched for. */
export interface LogMatch {
  seq: number;
  step: number | null;
}

export interface LogSearchResult {
  /** In seq order, each with seq > afterSeq. */
  matches: LogMatch[];
  /** Every stored line up to this seq was searched; the next window starts after it. */
  scannedThrough: number;
  /** Lines stored after `scannedThrough` were not searched yet (ask again from it). */
  hasMore: boolean;
}

export interface LogSearchArgs {
  query: string;
  afterSeq: number;
  first: number;
}

function checkArgs({ query, afterSeq, first }: LogSearchArgs): void {
  if (query.length === 0) throw new ValidationError('query must not be empty');
  if (query.length > MAX_LOG_SEARCH_QUERY) throw new ValidationError(`query must be at most ${MAX_LOG_SEARCH_QUERY} characters`);
  if (!Number.isInteger(afterSeq) || afterSeq < 0) throw new ValidationError('afterSeq must be a non-negative integer');
  if (!Number.isInteger(first) || first < 1 || first > MAX_LOG_SEARCH_MATCHES) throw new ValidationError(`first must be between 1 and ${MAX_LOG_SEARCH_MATCHES}`);
}

/**
 * Searches an execution's stored log for lines containing `query` (case-insensitive substring,
 * as Postgres's `lower` folds case), from `afterSeq` on, within one bounded window of lines.
 * Lines are masked before they are stored, so a search can never find a secret's value.
 * Callers scope the execution to its owner.
 *
 * Lines in Postgres are searched there (the text never reaches this process); once they exist
 * only in the archive, the archive is streamed through the same window.
 */
export async function searchLog(pool: pg.Pool, store: ArtifactStore, executionId: string, args: LogSearchArgs): Promise<LogSearchResult> {
  checkArgs(args);
  if (!isUuid(executionId)) return { matches: [], scannedThrough: args.afterSeq, hasMore: false };
  const lastSeq = await lastStoredSeq(pool, executionId);
  if (lastSeq <= args.afterSeq) return { matches: [], scannedThrough: args.afterSeq, hasMore: false };
  const { rows: next } = await pool.query(`select 1 from log_chunks where execution_id = $1 and seq = $2`, [executionId, args.afterSeq + 1]);
  const result = next.length > 0 ? await searchStored(pool, executionId, args, lastSeq) : await searchArchive(pool, store, executionId, args, lastSeq);
  return { ...result, hasMore: result.scannedThrough < lastSeq };
}

/** The seq of the last line stored so far (0 when none); the row's counter may lag the chunks of a live run. */
export async function lastStoredSeq(pool: pg.Pool, executionId: string): Promise<number> {
  if (!isUuid(executionId)) return 0;
  const { rows } = await pool.query<{ last_seq: number }>(
    `select greatest(e.last_seq, coalesce((select max(seq) from log_chunks where execution_id = e.id), 0)) as last_seq
       from executions e where e.id = $1`,
    [executionId],
  );
  return rows[0]?.last_seq ?? 0;
}

/**
 * One statement: the window is the lines after afterSeq up to LOG_SEARCH_SCAN_LINES of them and
 * LOG_SEARCH_SCAN_BYTES of text (`octet_length` reads a stored text's size without
 * decompressing it; the first line always counts, so a window is never empty).
 */
async function searchStored(pool: pg.Pool, executionId: string, { query, afterSeq, first }: LogSearchArgs, lastSeq: number): Promise<Omit<LogSearchResult, 'hasMore'>> {
  const { rows } = await pool.query<{ seq: number; step: number | null; window_end: number }>(
    `with sized as (
       select seq, sum(octet_length(text)) over (order by seq rows unbounded preceding) as running
         from log_chunks where execution_id = $1 and seq > $2 order by seq limit ${LOG_SEARCH_SCAN_LINES}
     ), bound as (
       select coalesce(max(seq) filter (where running <= ${LOG_SEARCH_SCAN_BYTES}), min(seq)) as window_end from sized
     )
     select c.seq, c.step, b.window_end from bound b
       left join lateral (
         select seq, step from log_chunks
          where execution_id = $1 and seq > $2 and seq <= b.window_end and strpos(lower(text), lower($3)) > 0
          order by seq limit $4
       ) c on true`,
    [executionId, afterSeq, query, first],
  );
  const windowEnd = rows[0]?.window_end ?? lastSeq;
  const matches = rows.filter((r) => r.seq !== null).map((r) => ({ seq: r.seq, step: r.step }));
  // A full page ends at its last match: the lines after it in the window are not searched yet.
  const scannedThrough = matches.length === first ? matches.at(-1)!.seq : windowEnd;
  return { matches, scannedThrough };
}

/** The same window over the archived NDJSON, streamed (never loaded whole). */
async function searchArchive(pool: pg.Pool, store: ArtifactStore, executionId: string, { query, afterSeq, first }: LogSearchArgs, lastSeq: number): Promise<Omit<LogSearchResult, 'hasMore'>> {
  const reader = new StoredLogReader(pool, store, executionId);
  const needle = query.toLowerCase();
  const matches: LogMatch[] = [];
  let at = afterSeq;
  let lines = 0;
  let bytes = 0;
  try {
    while (lines < LOG_SEARCH_SCAN_LINES && (bytes <= LOG_SEARCH_SCAN_BYTES || lines === 0)) {
      const page = await reader.readAfter(at, Math.min(ARCHIVE_PAGE, LOG_SEARCH_SCAN_LINES - lines));
      if (page.length === 0) return { matches, scannedThrough: lastSeq };
      for (const line of page) {
        if (lines > 0 && bytes + Buffer.byteLength(line.text) > LOG_SEARCH_SCAN_BYTES) return { matches, scannedThrough: at };
        at = line.seq;
        lines++;
        bytes += Buffer.byteLength(line.text);
        if (line.text.toLowerCase().includes(needle)) {
          matches.push({ seq: line.seq, step: line.step });
          if (matches.length === first) return { matches, scannedThrough: at };
        }
      }
    }
    return { matches, scannedThrough: at };
  } finally {
    await reader.close();
  }
}
