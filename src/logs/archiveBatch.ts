import type pg from 'pg';
import type { DueArchive } from '../executions/archive.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import { archiveLogToStore, logKeys } from './archive.js';

/** Logs of at most this many lines are read in one statement for the whole batch; bigger ones page by page. */
const SMALL_LOG_LINES = 2000;
/** Uploads in flight at once. */
const PARALLEL_PUTS = 8;

/** Whether a log is small enough to be read together with others of its batch. */
export function isSmallLog(archive: DueArchive): boolean {
  return archive.lastSeq <= SMALL_LOG_LINES;
}

/** What became of a batch of archives. */
export interface ArchiveResults {
  done: Array<{ id: string; key: string }>;
  failed: Array<{ archive: DueArchive; error: Error }>;
}

/**
 * Both forms of every small log of the batch, formatted by Postgres in one statement (the same
 * renderings as archive.ts's pages: NDJSON lossless, text with Kiln's lines marked).
 */
async function smallLogs(pool: pg.Pool, ids: string[]): Promise<Map<string, { ndjson: string; text: string }>> {
  const { rows } = await pool.query<{ id: string; ndjson: string; text: string }>(
    `select l.execution_id as id,
            string_agg(row_to_json(r)::text || chr(10), '' order by l.seq) as ndjson,
            string_agg(case when l.stream = 'SYSTEM' then '[kiln] ' || l.text else l.text end || chr(10), '' order by l.seq) as text
       from log_chunks l
       cross join lateral (select l.seq, l.stream, l.step, l.text, to_char(l.at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at) r
      where l.execution_id = any($1::uuid[])
      group by l.execution_id`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, { ndjson: r.ndjson, text: r.text }]));
}

/**
 * Archives a batch of finished executions' logs: the small ones read together, the big ones page
 * by page (archiveLogToStore), every upload bounded in parallelism. Never rejects: each archive
 * is either done or failed, for the caller to record in one statement each.
 */
export async function archiveBatch(pool: pg.Pool, store: ArtifactStore, batch: readonly DueArchive[]): Promise<ArchiveResults> {
  const results: ArchiveResults = { done: [], failed: [] };
  const small = batch.filter((a) => a.lastSeq <= SMALL_LOG_LINES);
  let texts = new Map<string, { ndjson: string; text: string }>();
  try {
    if (small.length > 0) texts = await smallLogs(pool, small.map((a) => a.id));
  } catch (err) {
    for (const archive of small) results.failed.push({ archive, error: err as Error });
    batch = batch.filter((a) => a.lastSeq > SMALL_LOG_LINES);
  }
  const one = async (archive: DueArchive): Promise<void> => {
    try {
      if (archive.lastSeq > SMALL_LOG_LINES) {
        results.done.push({ id: archive.id, key: await archiveLogToStore(pool, store, archive.id) });
        return;
      }
      const keys = logKeys(archive.id);
      const log = texts.get(archive.id) ?? { ndjson: '', text: '' };
      await store.put(keys.ndjson, log.ndjson, { contentType: 'application/x-ndjson' });
      await store.put(keys.text, log.text, { contentType: 'text/plain; charset=utf-8' });
      results.done.push({ id: archive.id, key: keys.ndjson });
    } catch (err) {
      results.failed.push({ archive, error: err as Error });
    }
  };
  const queue = [...batch];
  await Promise.all(
    Array.from({ length: Math.min(PARALLEL_PUTS, queue.length) }, async () => {
      for (let a = queue.shift(); a !== undefined; a = queue.shift()) await one(a);
    }),
  );
  return results;
}
