import type pg from 'pg';
import type { Log } from '../ops/log.js';
import { ExecutionTrigger } from '../entities/enums.js';
import { enqueueArchive, insertExecutions } from '../queue/executionQueue.js';
import { inTransaction, type Sql } from '../queue/sql.js';
import type { ExecutionPlan, JobSpec } from '../spec/types.js';

/**
 * Which claim a worker holds. Every write a worker makes about a running execution is fenced
 * by it: once the execution was re-queued as a next attempt (or finished, or cancelled), the
 * old worker's late writes match no row and change nothing.
 */
export interface Fence {
  id: string;
  attempt: number;
  workerId: string;
}

/** The row a worker needs to run an execution, as claimed. */
export interface ClaimedExecution extends Fence {
  jobId: string;
  number: number;
  lastSeq: number;
  plan: ExecutionPlan;
  /**
   * Seconds from the scheduled fire time to this claim (Postgres's clock for both) for the first
   * attempt of a SCHEDULE execution; null for any other (fire lateness, see KilnMetrics).
   */
  fireLatenessSec: number | null;
}

export type ClaimResult = { kind: 'claimed'; execution: ClaimedExecution } | { kind: 'busy' } | { kind: 'gone' };

/** SQL condition: the execution `$1` is still RUNNING under the claim (`$2` attempt, `$3` worker). */
const FENCED = `id = $1 and attempt = $2 and worker_id = $3 and status = 'RUNNING'`;

/**
 * QUEUED -> RUNNING with a lease. The job's row is locked first, so two claims of executions of
 * one job are serialised and the second sees the first as running: 'busy' (the caller retries
 * later). A cancelled, finished or deleted execution is 'gone' and never starts.
 */
export async function claimExecution(pool: pg.Pool, executionId: string, workerId: string, leaseMs: number): Promise<ClaimResult> {
  return inTransaction(pool, async (sql) => {
    const [job] = await sql<{ id: string }>(
      `select j.id from jobs j join executions e on e.job_id = j.id where e.id = $1 for update of j`,
      [executionId],
    );
    if (!job) return { kind: 'gone' };
    const [busy] = await sql(`select 1 from executions where job_id = $1 and status = 'RUNNING' and id <> $2 limit 1`, [job.id, executionId]);
    const rows = await sql<{ id: string; job_id: string; number: number; attempt: number; last_seq: number; plan: ExecutionPlan; lateness: number | null }>(
      `update executions set status = 'RUNNING', started_at = now(), worker_id = $2,
              lease_expires_at = now() + $3 * interval '1 millisecond'
        where id = $1 and status = 'QUEUED' and cancel_requested_at is null and $4::boolean
        returning id, job_id, number, attempt, last_seq, plan,
                  case when trigger = 'SCHEDULE' and attempt = 1 and scheduled_for is not null
                       then extract(epoch from started_at - scheduled_for)::float8 end as lateness`,
      [executionId, workerId, leaseMs, !busy],
    );
    const r = rows[0];
    if (!r) {
      const [still] = await sql(`select 1 from executions where id = $1 and status = 'QUEUED' and cancel_requested_at is null`, [executionId]);
      return still ? { kind: 'busy' } : { kind: 'gone' };
    }
    return {
      kind: 'claimed',
      execution: {
        id: r.id, jobId: r.job_id, number: r.number, attempt: r.attempt, workerId, lastSeq: r.last_seq, plan: r.plan,
        fireLatenessSec: r.lateness === null ? null : Number(r.lateness),
      },
    };
  });
}

/** 'cancel' when a cancel was requested, or the claim was lost (deleted, re-queued, finished). */
export async function pendingStop(pool: pg.Pool, fence: Fence): Promise<'cancel' | 'lost' | null> {
  const { rows } = await pool.query(`select cancel_requested_at, (${FENCED}) as ours from executions where id = $1`, [fence.id, fence.attempt, fence.workerId]);
  if (rows.length === 0 || !rows[0].ours) return 'lost';
  return rows[0].cancel_requested_at !== null ? 'cancel' : null;
}

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

export interface Outcome {
  status: 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'TIMED_OUT';
  exitCode: number | null;
  error: string | null;
}

/** Exponential backoff of the n-th retry (1-based), capped at 10 minutes. */
export function retryDelayMs(baseMs: number, retryNumber: number): number {
  return Math.min(baseMs * 2 ** (retryNumber - 1), 10 * 60_000);
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
