import type pg from 'pg';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import { archiveLogToStore, logKeys, SMALL_LOG_LINES } from './archive.js';
import { type ArchivedLog, buildPack, PACK_ENTRY_MAX_BYTES } from './logPacks.js';

export type { ArchivedLog };

/**
 * A finished execution waiting for its archive (taken by executions/archive.ts's takeDueArchives).
 * Defined here so that logs/ imports nothing of executions/: notify/ reads logs and executions/
 * queues notifications.
 */
export interface DueArchive {
  id: string;
  failures: number;
  /** Highest stored log seq: how big the log is. */
  lastSeq: number;
}

/**
 * Called with a pack's key before the pack is stored (executions/storeDeletions.ts's expectPack:
 * a pack whose recording never commits is deleted later), passed in by the caller for the same
 * reason as DueArchive.
 */
export type ExpectPack = (key: string) => Promise<void>;
/** Uploads in flight at once. */
const PARALLEL_PUTS = 8;

/** Whether a log is small enough to be read together with others of its batch (and kept as NDJSON only). */
export function isSmallLog(archive: DueArchive): boolean {
  return archive.lastSeq <= SMALL_LOG_LINES;
}

/** What became of a batch of archives. */
export interface ArchiveResults {
  done: ArchivedLog[];
  failed: Array<{ archive: DueArchive; error: Error }>;
}

/**
 * The NDJSON of every small log of the batch, formatted by Postgres in one statement (the same
 * rendering as archive.ts's pages). Small logs have no text object: it is rendered when read.
 */
async function smallLogs(pool: pg.Pool, ids: string[]): Promise<Map<string, string>> {
  const { rows } = await pool.query<{ id: string; ndjson: string }>(
    `select l.execution_id as id, string_agg(row_to_json(r)::text || chr(10), '' order by l.seq) as ndjson
       from log_chunks l
       cross join lateral (select l.seq, l.stream, l.step, l.text, to_char(l.at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at) r
      where l.execution_id = any($1::uuid[])
      group by l.execution_id`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.ndjson]));
}

/**
 * Archives a batch of finished executions' logs: the small ones read together and stored as one
 * pack (logPacks.ts), those too big for a pack and the big ones one object each (the big page by
 * page, archiveLogToStore), every upload bounded in parallelism. Never rejects: each archive is
 * either done or failed, for the caller to record in one statement each.
 */
export async function archiveBatch(
  pool: pg.Pool,
  store: ArtifactStore,
  batch: readonly DueArchive[],
  expectPack: ExpectPack,
): Promise<ArchiveResults> {
  const results: ArchiveResults = { done: [], failed: [] };
  const small = batch.filter((a) => a.lastSeq <= SMALL_LOG_LINES);
  let texts = new Map<string, Buffer>();
  try {
    if (small.length > 0) texts = new Map([...(await smallLogs(pool, small.map((a) => a.id)))].map(([id, t]) => [id, Buffer.from(t)]));
  } catch (err) {
    for (const archive of small) results.failed.push({ archive, error: err as Error });
    batch = batch.filter((a) => a.lastSeq > SMALL_LOG_LINES);
  }
  const text = (archive: DueArchive) => texts.get(archive.id) ?? Buffer.alloc(0);
  const packed = batch.filter((a) => a.lastSeq <= SMALL_LOG_LINES && text(a).length <= PACK_ENTRY_MAX_BYTES);
  if (packed.length > 0) await storePack(store, packed, text, results, expectPack);
  const one = async (archive: DueArchive): Promise<void> => {
    try {
      if (archive.lastSeq > SMALL_LOG_LINES) {
        results.done.push({ id: archive.id, key: await archiveLogToStore(pool, store, archive.id) });
        return;
      }
      const keys = logKeys(archive.id);
      await store.put(keys.ndjson, text(archive), { contentType: 'application/x-ndjson' });
      results.done.push({ id: archive.id, key: keys.ndjson });
    } catch (err) {
      results.failed.push({ archive, error: err as Error });
    }
  };
  const queue = batch.filter((a) => !packed.includes(a));
  await Promise.all(
    Array.from({ length: Math.min(PARALLEL_PUTS, queue.length) }, async () => {
      for (let a = queue.shift(); a !== undefined; a = queue.shift()) await one(a);
    }),
  );
  return results;
}

/**
 * Stores the logs of `packed` as one pack: all done, or all failed. The caller records it, with
 * packRecorded, in the transaction that records the logs (see expectPack).
 */
async function storePack(
  store: ArtifactStore,
  packed: readonly DueArchive[],
  text: (a: DueArchive) => Buffer,
  results: ArchiveResults,
  expectPack: ExpectPack,
): Promise<void> {
  const pack = buildPack(packed.map((a) => ({ id: a.id, bytes: text(a) })));
  try {
    await expectPack(pack.key);
    await store.put(pack.key, pack.body, { contentType: 'application/x-ndjson' });
    results.done.push(...pack.logs);
  } catch (err) {
    for (const archive of packed) results.failed.push({ archive, error: err as Error });
  }
}
