import type pg from 'pg';
import type { Fence } from './fence.js';

/** A change of one step of a RUNNING execution, as the run saw it (its own clock). */
export interface StepChange {
  index: number;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED';
  exitCode: number | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** The columns of a batch of step changes, as unnest() parameters in this order. */
export function stepChangeParams(changes: readonly StepChange[]): unknown[] {
  return [
    changes.map((c) => c.index),
    changes.map((c) => c.status),
    changes.map((c) => c.exitCode),
    changes.map((c) => c.startedAt?.toISOString() ?? null),
    changes.map((c) => c.finishedAt?.toISOString() ?? null),
  ];
}

/**
 * Writes step changes of a RUNNING execution under the worker's claim, in one statement (a lost
 * claim changes nothing), and says whether the owner's events are followed now. The run batches
 * them while nobody follows (see worker/stepMarks.ts); its last ones go with the finish (finish.ts).
 */
export async function markSteps(pool: pg.Pool, fence: Fence, changes: readonly StepChange[]): Promise<{ followed: boolean }> {
  const { rows } = await pool.query<{ followed: boolean }>(
    `with claim as (
       select owner from executions where id = $1 and attempt = $2 and worker_id = $3 and status = 'RUNNING'
     ), marked as (
       update execution_steps s set status = c.status, exit_code = c.exit_code,
              started_at = coalesce(c.started_at, s.started_at), finished_at = coalesce(c.finished_at, s.finished_at)
         from unnest($4::int[], $5::text[], $6::int[], $7::timestamptz[], $8::timestamptz[]) as c(idx, status, exit_code, started_at, finished_at)
        where s.execution_id = $1 and s.index = c.idx and exists (select 1 from claim)
     )
     select kiln_owner_followed(owner) as followed from claim`,
    [fence.id, fence.attempt, fence.workerId, ...stepChangeParams(changes)],
  );
  return { followed: rows[0]?.followed ?? false };
}
