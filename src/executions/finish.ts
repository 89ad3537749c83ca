import type pg from 'pg';
import { ExecutionTrigger } from '../entities/enums.js';
import type { Log } from '../ops/log.js';
import type { JobSpec } from '../spec/types.js';
import { retryDelayMs } from './backoff.js';
import { enqueueArchive } from './archive.js';
import { insertExecutions } from './create.js';
import { FENCED, type Fence } from './fence.js';
import { inTransaction, type Sql } from './sql.js';

export interface Outcome {
  status: 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'TIMED_OUT';
  exitCode: number | null;
  error: string | null;
}

/**
 * Ends a RUNNING execution under its claim: the final status, the steps never reached marked
 * SKIPPED, the log's archive queued (its own task, so the status never waits for the store),
 * and, after a failure, the job's next retry queued with backoff — all in one transaction.
 * Returns false when the claim was lost (the write was fenced off).
 */
export async function finishExecution(
  pool: pg.Pool,
  fence: Fence,
  outcome: Outcome,
  retry: { defaultImage: string; baseMs: number; log?: Log },
): Promise<boolean> {
  let retryId: string | null = null;
  const finished = await inTransaction(pool, async (sql) => {
    const done = await sql<{ job_id: string; retry_of: string | null; retry_number: number }>(
      `update executions set status = $4, exit_code = $5, error = $6, finished_at = now(), lease_expires_at = null
        where ${FENCED} returning job_id, retry_of, retry_number`,
      [fence.id, fence.attempt, fence.workerId, outcome.status, outcome.exitCode, outcome.error],
    );
    const row = done[0];
    if (!row) return false;
    await sql(
      `update execution_steps set status = case when status = 'RUNNING' then 'FAILED' else 'SKIPPED' end, finished_at = coalesce(finished_at, now())
        where execution_id = $1 and status in ('PENDING', 'RUNNING')`,
      [fence.id],
    );
    await enqueueArchive(sql, fence.id);
    if (outcome.status === 'FAILED' || outcome.status === 'TIMED_OUT') retryId = await queueRetry(sql, fence.id, row, retry);
    return true;
  });
  if (!finished) {
    retry.log?.(`execution ${fence.id}: attempt ${fence.attempt} was no longer this worker's; its outcome ${outcome.status} was not recorded`, {
      level: 'warn', executionId: fence.id, attempt: fence.attempt, workerId: fence.workerId,
    });
  } else if (retryId !== null) {
    retry.log?.(`execution ${fence.id} ${outcome.status}: retry queued as execution ${retryId}`, {
      executionId: fence.id, attempt: fence.attempt, workerId: fence.workerId, retryExecutionId: retryId,
    });
  }
  return finished;
}

/** Queues the next retry of a failed execution when its job allows one more. */
async function queueRetry(
  sql: Sql,
  executionId: string,
  row: { job_id: string; retry_of: string | null; retry_number: number },
  retry: { defaultImage: string; baseMs: number },
): Promise<string | null> {
  const [job] = await sql<{ id: string; owner: string; priority: number; definition: JobSpec }>(
    `select id, owner, priority, definition from jobs where id = $1 for update`,
    [row.job_id],
  );
  const next = row.retry_number + 1;
  if (!job || next > job.definition.retries) return null;
  const [created] = await insertExecutions(sql, retry.defaultImage, [
    {
      job,
      trigger: ExecutionTrigger.RETRY,
      retryOf: row.retry_of ?? executionId,
      retryNumber: next,
      runAt: new Date(Date.now() + retryDelayMs(retry.baseMs, next)),
    },
  ]);
  return created?.id ?? null;
}
