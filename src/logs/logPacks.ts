import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type pg from 'pg';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import { type Sql, sqlOfPg } from '../util/sql.js';

/**
 * Log packs (docs/design.md#archives): the small logs of one archive round go to the store as one
 * object, each log a byte range of it, instead of one object each. On a local store a file costs
 * several system calls (a directory, a temporary file, a rename), which for short runs was most
 * of the worker's CPU; on S3 it is a request. A deleted execution's bytes leave its pack by
 * compaction: the pack is rewritten without them.
 */

/**
 * Where an archived log is: the whole object `key`, or (a small log, docs/design.md#archives)
 * `range` of the pack `key`.
 */
export interface ArchivedLog {
  id: string;
  key: string;
  range?: { start: number; length: number };
}

/** A small log bigger than this is stored as an object of its own rather than packed. */
export const PACK_ENTRY_MAX_BYTES = 256 * 1024;

/** A new pack's key: packs are written once, never appended to. */
export function newPackKey(): string {
  return `log-packs/${randomUUID()}.ndjson`;
}

/** A pack's body and where each log is in it. */
export interface Pack {
  key: string;
  body: Buffer;
  logs: Array<Required<ArchivedLog>>;
}

/** Lays the logs (NDJSON by execution id) end to end in a new pack. */
export function buildPack(ndjson: ReadonlyArray<{ id: string; bytes: Buffer }>): Pack {
  const key = newPackKey();
  let start = 0;
  const logs = ndjson.map(({ id, bytes }) => {
    const log = { id, key, range: { start, length: bytes.length } };
    start += bytes.length;
    return log;
  });
  return { key, body: Buffer.concat(ndjson.map((n) => n.bytes)), logs };
}

/**
 * An execution's archived NDJSON: the whole object, or its range of a pack. Throws
 * ObjectNotFoundError when the object is gone (a pack rewritten meanwhile: read again).
 */
export async function openArchivedNdjson(store: ArtifactStore, log: ArchivedLog): Promise<Readable> {
  if (log.range === undefined) return store.getStream(log.key);
  if (log.range.length === 0) return Readable.from([]);
  return store.getStream(log.key, log.range);
}

/** Where an execution's log is archived; null when it is not (yet). A read: only executions/ writes these columns. */
export async function archivedLogOf(sql: Sql, executionId: string): Promise<ArchivedLog | null> {
  const [row] = await sql<{ key: string | null; start: number | null; length: number | null }>(
    `select log_key as key, log_offset as start, log_bytes as length from executions where id = $1`,
    [executionId],
  );
  if (!row || row.key === null) return null;
  return { id: executionId, key: row.key, ...(row.start === null ? {} : { range: { start: row.start, length: row.length ?? 0 } }) };
}

/**
 * The archived NDJSON of an execution as its row says now, or null when it is not archived. A
 * pack can be rewritten between the row's read and the store's (a compaction): then the row is
 * read once more.
 */
export async function archivedNdjsonOf(pool: pg.Pool, store: ArtifactStore, executionId: string): Promise<Readable | null> {
  for (let tries = 1; ; tries++) {
    const log = await archivedLogOf(sqlOfPg(pool), executionId);
    if (log === null) return null;
    try {
      return await openArchivedNdjson(store, log);
    } catch (err) {
      if ((err as Error).name !== 'ObjectNotFoundError' || log.range === undefined || tries >= 2) throw err;
    }
  }
}
