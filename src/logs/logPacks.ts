import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { archivedLogOf, movePackedLogs, packedLogs, type ArchivedLog } from '../executions/archive.js';
import { inTransaction, sqlOfPg } from '../executions/sql.js';
import { expectPack, packCompacted, packCompactionFailed, packRecorded, takePackCompaction } from '../executions/storeDeletions.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';

/**
 * Log packs (docs/design.md#archives): the small logs of one archive round go to the store as one
 * object, each log a byte range of it, instead of one object each. On a local store a file costs
 * several system calls (a directory, a temporary file, a rename), which for short runs was most
 * of the worker's CPU; on S3 it is a request. A deleted execution's bytes leave its pack by
 * compaction: the pack is rewritten without them.
 */

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

/**
 * Compacts the pack `key` (listed by a deletion): its logs still kept are written to a new pack
 * and moved there in one transaction, then the old pack is removed from the store. A pack that
 * keeps nothing is only removed. The request stays listed until the old pack is gone, so a crash
 * or a store failure anywhere only delays it. Returns false when another process has it.
 */
export async function compactPack(pool: pg.Pool, store: ArtifactStore, key: string, retrySec: number): Promise<boolean> {
  try {
    const taken = await inTransaction(pool, async (sql) => {
      // The rows first, then the request: the order a deletion takes them in (no deadlock).
      const kept = await packedLogs(sql, key);
      if (!(await takePackCompaction(sql, key))) return false;
      if (kept.length > 0) {
        const old = await store.get(key);
        const pack = buildPack(kept.map((l) => ({ id: l.id, bytes: old.subarray(l.range.start, l.range.start + l.range.length) })));
        await expectPack(pool, pack.key);
        await store.put(pack.key, pack.body, { contentType: 'application/x-ndjson' });
        await movePackedLogs(sql, key, pack.logs);
        await packRecorded(sql, [pack.key]);
      }
      return true;
    });
    if (!taken) return false;
    await store.delete(key);
    await packCompacted(pool, key);
    return true;
  } catch (err) {
    await packCompactionFailed(pool, key, retrySec).catch(() => {});
    throw err;
  }
}
