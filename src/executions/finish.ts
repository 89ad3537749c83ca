import type pg from 'pg';
import { ExecutionTrigger } from '../entities/enums.js';
import { queueEndings } from '../notify/queue.js';
import { backoffMs } from '../util/backoff.js';
import type { Log } from '../util/log.js';
import type { JobSpec } from '../jobfile/types.js';
import { insertExecutions } from './create.js';
import type { Fence } from './fence.js';
import { Finisher, type ClaimSink } from './finisher.js';
import { finishMany, type FinalLine, type Outcome } from './finishMany.js';
import type { StepChange } from './steps.js';
import { inTransaction, type Sql } from '../util/sql.js';

export type { FinalLine, Outcome } from './finishMany.js';

/** Longest wait before a retry of a failed run. */
const RETRY_MAX_MS = 10 * 60_000;

/** When the n-th retry (1-based) of a failed run is due: Kiln's one backoff rule, capped at 10 minutes. */
export function retryDelayMs(baseMs: number, retryNumber: number): number {
  return backoffMs(baseMs, retryNumber, RETRY_MAX_MS);
}

/** Statuses after which the job may queue a retry. */
const RETRYABLE: ReadonlySet<Outcome['status']> = new Set(['FAILED', 'TIMED_OUT']);

/** One Finisher per pool: the runs of a process share their commits. */
const finishers = new WeakMap<pg.Pool, Finisher>();

function finisherOf(pool: pg.Pool): Finisher {
  let finisher = finishers.get(pool);
  if (!finisher) finishers.set(pool, (finisher = new Finisher(pool)));
  return finisher;
}

/**
 * From now on the finishes of `sink.workerId`'s runs on `pool` also claim that worker's next
 * executions (see ClaimSink); returns the detach.
 */
export function claimWithFinishes(pool: pg.Pool, sink: ClaimSink): () => void {
  return finisherOf(pool).attach(sink);
}

/**
 * Ends a RUNNING execution under its claim (see finishMany): the final status, its last step
 * changes and log lines, the steps never reached, the log's archive due, in one statement shared
 * with the other runs of this process that end meanwhile; after a failure (FAILED, TIMED_OUT), in
 * a transaction of its own that reads the job's `retries` as it is now and queues the next retry
 * with backoff when one is left. (The claim no longer reads `retries` for every run it starts: a
 * success never needs it, and one subquery per claimed row was 6% of the finish-and-claim.) The ending's
 * notifications are queued in the same transaction (docs/design.md#notifications). Returns false
 * when the claim was lost (the write was fenced off).
 */
export async function finishExecution(
  pool: pg.Pool,
  fence: Fence,
  outcome: Outcome,
  retry: { defaultImage: string; baseMs: number; log?: Log },
  steps: readonly StepChange[] = [],
  lines: readonly FinalLine[] = [],
): Promise<boolean> {
  const finish = { fence, outcome, steps, lines };
  let retryId: string | null = null;
  const finisher = finisherOf(pool);
  const finished =
    RETRYABLE.has(outcome.status)
      ? await inTransaction(pool, async (sql) => {
          const [row] = await finishMany(sql, [finish], { notify: false });
          if (!row) return false;
          retryId = await queueRetry(sql, fence.id, row, retry);
          // A failure that is retried notifies nothing: the retry chain's last execution does.
          if (retryId === null) await queueEndings(sql, [fence.id]);
          return true;
        })
      : await finisher.finish(finish);
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
  const next = row.retry_number + 1;
  // Read before locking: most failures have no retry left, and a locked job row is one the
  // scheduler's pass skips (skip locked) until this commits.
  const [left] = await sql<{ retries: number }>(`select coalesce((definition->>'retries')::int, 0) as retries from jobs where id = $1`, [row.job_id]);
  if (!left || next > left.retries) return null;
  const [job] = await sql<{ id: string; owner: string; priority: number; definition: JobSpec }>(
    `select id, owner, priority, definition from jobs where id = $1 for update`,
    [row.job_id],
  );
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
