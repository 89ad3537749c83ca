import type pg from 'pg';
import type { ArtifactRecord } from '../entities/Execution.js';
import { FENCED, type Fence } from './fence.js';
import { inTransaction, sqlOfPg, type Sql } from '../util/sql.js';

/**
 * The bytes of artifacts recorded for the owner of execution `executionId`, that execution's own
 * left out (a later attempt replaces them). Read through the partial index on executions with
 * artifacts (docs/design.md#quotas).
 */
async function ownerUsage(sql: Sql, executionId: string): Promise<number> {
  const rows = await sql<{ used: string }>(
    `select coalesce(sum(e.artifact_bytes), 0)::text as used from executions e
      where e.owner = (select owner from executions where id = $1) and e.artifact_bytes > 0 and e.id <> $1`,
    [executionId],
  );
  return Number(rows[0]?.used ?? 0);
}

/** How many bytes the owner of `executionId` may still store; null: no quota. */
export async function ownerStorageLeft(pool: pg.Pool, executionId: string, quota: number | null): Promise<number | null> {
  if (quota === null) return null;
  return Math.max(0, quota - (await ownerUsage(sqlOfPg(pool), executionId)));
}

/** What recordArtifacts kept, and what did not fit the owner's quota (its objects are the caller's to delete). */
export interface RecordedArtifacts {
  kept: ArtifactRecord[];
  refused: ArtifactRecord[];
  /** The owner's bytes besides this execution's, when the quota was checked. */
  usedByOthers: number;
}

/**
 * Records the stored artifacts on the execution, while this worker's claim still holds. With a
 * quota, the owner's usage is read and the artifacts written under one lock per owner, so that two
 * executions of one owner finishing together cannot both fit in the same room: artifacts past the
 * quota (in list order) are refused rather than recorded.
 */
export async function recordArtifacts(
  pool: pg.Pool,
  fence: Fence,
  artifacts: readonly ArtifactRecord[],
  quota: number | null,
): Promise<RecordedArtifacts> {
  return inTransaction(pool, async (sql) => {
    let usedByOthers = 0;
    const kept: ArtifactRecord[] = [];
    const refused: ArtifactRecord[] = [];
    if (quota !== null) {
      await sql(`select pg_advisory_xact_lock(hashtext('kiln.storage'), hashtext(owner)) from executions where id = $1`, [fence.id]);
      usedByOthers = await ownerUsage(sql, fence.id);
    }
    let total = 0;
    for (const artifact of artifacts) {
      const fits = quota === null || usedByOthers + total + artifact.size <= quota;
      if (fits && refused.length === 0) {
        kept.push(artifact);
        total += artifact.size;
      } else refused.push(artifact);
    }
    await sql(`update executions set artifacts = $4::jsonb, artifact_bytes = $5 where ${FENCED}`, [
      fence.id, fence.attempt, fence.workerId, JSON.stringify(kept), total,
    ]);
    return { kept, refused, usedByOthers };
  });
}
