import type pg from 'pg';
import type { Log } from '../util/log.js';
import { QUEUED_CHANNEL } from './queue.js';
import type { Fence } from './fence.js';
import { inTransaction, type Sql } from '../util/sql.js';

/** A RUNNING execution's attempt that is over without an outcome, locked by the caller's transaction. */
export interface LostAttempt {
  id: string;
  job_id: string;
  attempt: number;
  worker_id: string | null;
  priority: number;
}

/**
 * Hands RUNNING executions (locked by the caller's transaction) to a next attempt: back to QUEUED
 * with `attempt + 1` and `reason(row)` in `error`, their steps PENDING again, the reason as a SYSTEM
 * line in the log, claimable again after `delayMs` (and the workers told, at commit). The old
 * worker is fenced by the attempt number (its late writes match no row); its container must
 * already be gone. A cancel asked for while the lost attempt ran ends the execution CANCELLED
 * instead (a claim never starts a QUEUED execution with a cancel request).
 */
export async function requeueAsNextAttempt(
  sql: Sql,
  rows: readonly LostAttempt[],
  reason: (row: LostAttempt) => string,
  opts: { delayMs?: number } = {},
): Promise<void> {
  if (rows.length === 0) return;
  const ids = rows.map((e) => e.id);
  // The SYSTEM line goes after every stored line: a LogWriter locks the row before it inserts (see
  // LogWriter.write), so none is in flight now, and any stored line counts even past last_seq.
  await sql(
    `update executions e set status = case when e.cancel_requested_at is null then 'QUEUED' else 'CANCELLED' end,
            attempt = e.attempt + 1, worker_id = null, lease_expires_at = null, started_at = null,
            finished_at = case when e.cancel_requested_at is null then null else now() end,
            archive_due_at = case when e.cancel_requested_at is null then null else now() end,
            run_at = now() + $3 * interval '1 millisecond', error = u.reason,
            last_seq = greatest(e.last_seq, coalesce((select max(c.seq) from log_chunks c where c.execution_id = e.id), 0)) + 1
       from unnest($1::uuid[], $2::text[]) as u(id, reason)
      where e.id = u.id`,
    [ids, rows.map(reason), opts.delayMs ?? 0],
  );
  await sql(
    `with line as (
       insert into log_chunks (execution_id, seq, stream, step, text, at)
       select id, last_seq, 'SYSTEM', null, error, now() from executions where id = any($1::uuid[])
     ), steps as (
       update execution_steps s set status = case when e.status = 'CANCELLED' then 'SKIPPED' else 'PENDING' end,
              exit_code = null, started_at = null, finished_at = null
         from executions e where e.id = s.execution_id and e.id = any($1::uuid[])
     )
     select pg_notify($2, '')`,
    [ids, QUEUED_CHANNEL],
  );
}

/**
 * Hands executions this worker stopped back to the queue as their next attempt, with `reason` in
 * `error` and as a SYSTEM log line (the same path as an expired lease: see requeueAsNextAttempt),
 * claimable at once or after `opts.delayMs` (an infrastructure failure's backoff).
 * `opts.engineDown` records the attempts as lost to an unreachable engine
 * (executions.engine_down_attempts). Only rows still RUNNING under these very claims change, so an
 * execution that finished, was cancelled or was already re-queued elsewhere is left alone.
 * Returns the executions re-queued.
 */
export async function handBack(
  pool: pg.Pool,
  fences: readonly Fence[],
  reason: string,
  log: Log,
  opts: { delayMs?: number; engineDown?: boolean } = {},
): Promise<LostAttempt[]> {
  if (fences.length === 0) return [];
  const rows = await inTransaction(pool, async (sql) => {
    const lost = await sql<LostAttempt>(
      `select e.id, e.job_id, e.attempt, e.worker_id, e.priority
         from executions e join unnest($1::uuid[], $2::int[], $3::text[]) as f(id, attempt, worker) on e.id = f.id
        where e.attempt = f.attempt and e.worker_id = f.worker and e.status = 'RUNNING'
        for update of e`,
      [fences.map((f) => f.id), fences.map((f) => f.attempt), fences.map((f) => f.workerId)],
    );
    await requeueAsNextAttempt(sql, lost, (e) => `attempt ${e.attempt} handed back: ${reason}; re-queued as attempt ${e.attempt + 1}`, { delayMs: opts.delayMs });
    if (opts.engineDown && lost.length > 0) {
      await sql(`update executions set engine_down_attempts = engine_down_attempts + 1 where id = any($1::uuid[])`, [lost.map((e) => e.id)]);
    }
    return lost;
  });
  for (const e of rows) {
    log(`execution ${e.id}: attempt ${e.attempt} handed back: ${reason}; re-queued as attempt ${e.attempt + 1}`, {
      level: 'warn', executionId: e.id, jobId: e.job_id, attempt: e.attempt, workerId: e.worker_id,
    });
  }
  return rows;
}
