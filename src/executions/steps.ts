import type pg from 'pg';
import { FENCED, type Fence } from './fence.js';

/** A step of a RUNNING execution starts or ends, under the worker's claim (a lost claim changes nothing). */
export async function markStep(
  pool: pg.Pool,
  fence: Fence,
  index: number,
  change: { status: 'RUNNING' } | { status: 'SUCCEEDED' | 'FAILED'; exitCode: number | null },
): Promise<void> {
  const fenced = `execution_id = $1 and index = $4 and exists (select 1 from executions where ${FENCED})`;
  if (change.status === 'RUNNING') {
    await pool.query(`update execution_steps set status = 'RUNNING', started_at = now() where ${fenced}`, [fence.id, fence.attempt, fence.workerId, index]);
  } else {
    await pool.query(`update execution_steps set status = $5, exit_code = $6, finished_at = now() where ${fenced}`, [
      fence.id, fence.attempt, fence.workerId, index, change.status, change.exitCode,
    ]);
  }
}

