import type pg from 'pg';
import { ExecutionTrigger } from '../entities/enums.js';
import type { Log } from '../ops/log.js';
import type { JobSpec } from '../spec/types.js';
import { retryDelayMs } from './backoff.js';
import { ARCHIVE_NOW } from './archive.js';
import { insertExecutions } from './create.js';
import { FENCED, type Fence } from './fence.js';
import { stepChangeParams, type StepChange } from './steps.js';
import { inTransaction, type Sql } from './sql.js';

export interface Outcome {
  status: 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'TIMED_OUT';
  exitCode: number | null;
  error: string | null;
}

/** A log line the finish stores with the outcome (a LogWriter's tail: see takeTail). */
export interface FinalLine {
  seq: number;
  stream: string;
  step: number | null;
  text: string;
  at: Date;
}

/** Statuses after which the job may queue a retry. */
const RETRYABLE: ReadonlySet<Outcome['status']> = new Set(['FAILED', 'TIMED_OUT']);

/**
 * Ends a RUNNING execution under its claim: the final status, the steps never reached marked
 * SKIPPED and the log's archive due, in one statement; after a failure of a job that retries,
 * its next retry is queued with backoff in the same transaction. Returns false when the claim
 * was lost (the write was fenced off).
 */
export async function finishExecution(
  pool: pg.Pool,
  fence: Fence,
  outcome: Outcome,
  retry: { defaultImage: string; baseMs: number; log?: Log; retries: number },
  steps: readonly StepChange[] = [],
  lines: readonly FinalLine[] = [],
): Promise<boolean> {
  const params = [
    fence.id, fence.attempt, fence.workerId, outcome.status, outcome.exitCode, outcome.error, ...stepChangeParams(steps),
    lines.map((l) => l.seq), lines.map((l) => l.stream), lines.map((l) => l.step), lines.map((l) => l.text), lines.map((l) => l.at.toISOString()),
    lines.at(-1)?.seq ?? null,
  ];
  let retryId: string | null = null;
  const finished =
    RETRYABLE.has(outcome.status) && retry.retries > 0
      ? await inTransaction(pool, async (sql) => {
          const [row] = await sql<FinishedRow>(FINISH, params);
          if (!row) return false;
          retryId = await queueRetry(sql, fence.id, row, retry);
          return true;
        })
      : (await pool.query<FinishedRow>(FINISH, params)).rows.length > 0;
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

interface FinishedRow {
  job_id: string;
  retry_of: string | null;
  retry_number: number;
}

/**
 * The outcome, the archive, the run's last log lines ($12..$16, the highest seq $17, handed over by
 * its LogWriter: see takeTail), its last step changes ($7..$11, see stepChangeParams) and the steps
 * it never finished (RUNNING -> FAILED, PENDING -> SKIPPED), under the claim ($1..$3), in one
 * statement. The row is locked by the update before the lines go in, as a LogWriter batch locks
 * it first (src/logs/storeLines.ts); a step's row is updated once: its last change and its final
 * status are one update.
 */
const FINISH = `
with done as (
  update executions set status = $4, exit_code = $5, error = $6, finished_at = now(), lease_expires_at = null, ${ARCHIVE_NOW},
         last_seq = greatest(last_seq, coalesce($17::int, 0))
   where ${FENCED} returning job_id, retry_of, retry_number
), lines as (
  insert into log_chunks (execution_id, seq, stream, step, text, at)
  select $1, u.s, u.st, u.sp, u.tx, u.a
    from unnest($12::int[], $13::text[], $14::int[], $15::text[], $16::timestamptz[]) as u(s, st, sp, tx, a)
   where exists (select 1 from done)
), changes as (
  select * from unnest($7::int[], $8::text[], $9::int[], $10::timestamptz[], $11::timestamptz[]) as c(idx, status, exit_code, started_at, finished_at)
), steps as (
  update execution_steps s
     set status = case coalesce(c.status, s.status) when 'RUNNING' then 'FAILED' when 'PENDING' then 'SKIPPED' else coalesce(c.status, s.status) end,
         exit_code = case when c.idx is null then s.exit_code else c.exit_code end,
         started_at = coalesce(c.started_at, s.started_at),
         finished_at = coalesce(c.finished_at, s.finished_at, now())
    from execution_steps s2 left join changes c on c.idx = s2.index
   where s.id = s2.id and s2.execution_id = $1 and (c.idx is not null or s2.status in ('PENDING', 'RUNNING'))
     and exists (select 1 from done)
)
select job_id, retry_of, retry_number from done`;

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
