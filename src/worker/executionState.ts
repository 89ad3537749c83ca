import type pg from 'pg';
import type { ExecutionPlan } from '../spec/types.js';
import { enqueueArchiveSql } from '../queue/sql.js';

/** The row a worker needs to run an execution, as claimed. */
export interface ClaimedExecution {
  id: string;
  jobId: string;
  number: number;
  attempt: number;
  lastSeq: number;
  plan: ExecutionPlan;
}

/**
 * QUEUED -> RUNNING as one compare-and-set: a cancelled, finished or deleted execution is never
 * started, and two workers can never both claim the same execution.
 */
export async function claimExecution(pool: pg.Pool, executionId: string, workerId: string): Promise<ClaimedExecution | null> {
  const { rows } = await pool.query(
    `update executions set status = 'RUNNING', started_at = now(), worker_id = $2, error = null
      where id = $1 and status = 'QUEUED' and cancel_requested_at is null
      returning id, job_id, number, attempt, last_seq, plan`,
    [executionId, workerId],
  );
  const r = rows[0];
  if (!r) return null;
  return { id: r.id, jobId: r.job_id, number: r.number, attempt: r.attempt, lastSeq: r.last_seq, plan: r.plan };
}

/** 'cancel' when a cancel was requested or the execution was deleted, else null. */
export async function pendingStop(pool: pg.Pool, executionId: string): Promise<'cancel' | null> {
  const { rows } = await pool.query(`select cancel_requested_at from executions where id = $1`, [executionId]);
  if (rows.length === 0 || rows[0].cancel_requested_at !== null) return 'cancel';
  return null;
}

export async function markStep(
  pool: pg.Pool,
  executionId: string,
  index: number,
  change: { status: 'RUNNING' } | { status: 'SUCCEEDED' | 'FAILED'; exitCode: number | null },
): Promise<void> {
  if (change.status === 'RUNNING') {
    await pool.query(`update execution_steps set status = 'RUNNING', started_at = now() where execution_id = $1 and index = $2`, [executionId, index]);
  } else {
    await pool.query(
      `update execution_steps set status = $3, exit_code = $4, finished_at = now() where execution_id = $1 and index = $2`,
      [executionId, index, change.status, change.exitCode],
    );
  }
}

/**
 * Ends a RUNNING execution: the final status, the steps never reached marked SKIPPED, and the
 * log's archive queued, in one transaction. Archiving runs as its own task so the status never
 * waits for the store.
 */
export async function finishExecution(
  pool: pg.Pool,
  executionId: string,
  outcome: { status: 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'TIMED_OUT'; exitCode: number | null; error: string | null },
): Promise<boolean> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const { rowCount } = await client.query(
      `update executions set status = $2, exit_code = $3, error = $4, finished_at = now()
        where id = $1 and status = 'RUNNING'`,
      [executionId, outcome.status, outcome.exitCode, outcome.error],
    );
    if (rowCount === 1) {
      await client.query(
        `update execution_steps set status = case when status = 'RUNNING' then 'FAILED' else 'SKIPPED' end, finished_at = coalesce(finished_at, now())
          where execution_id = $1 and status in ('PENDING', 'RUNNING')`,
        [executionId],
      );
      await client.query(enqueueArchiveSql, [executionId]);
    }
    await client.query('commit');
    return rowCount === 1;
  } catch (err) {
    await client.query('rollback').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
