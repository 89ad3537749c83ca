import type pg from 'pg';
import { buildPack } from '../logs/logPacks.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import { movePackedLogs, packedLogs } from './archive.js';
import { inTransaction } from '../util/sql.js';
import { expectPack, packCompacted, packCompactionFailed, packRecorded, takePackCompaction } from './storeDeletions.js';

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
