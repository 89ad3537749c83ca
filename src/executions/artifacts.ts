import type pg from 'pg';
import { FENCED, type Fence } from './fence.js';

/** Records the stored artifacts on the execution, while this worker's claim still holds. */
export async function recordArtifacts(
  pool: pg.Pool,
  fence: Fence,
  artifacts: readonly unknown[],
): Promise<void> {
  await pool.query(
    `update executions set artifacts = $4::jsonb where ${FENCED}`,
    [fence.id, fence.attempt, fence.workerId, JSON.stringify(artifacts)],
  );
}
