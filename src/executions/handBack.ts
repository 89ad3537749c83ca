import type pg from 'pg';
import type { Log } from '../ops/log.js';
import { enqueueArchive } from './archive.js';
import { enqueueRuns } from './create.js';
import type { Fence } from './fence.js';
import { inTransaction, type Sql } from './sql.js';

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
 * line in the log, and a fresh queue entry. The old worker is fenced by the attempt number (its
 * late writes match no row); its container must already be gone.
 *
 * The old queue entry (job key `execution:<id>`) is replaced by the new one, and only it:
 * - `holders: 'live'` (a worker hands back its own runs): graphile_worker.remove_job neutralises
 *   the entry the live worker still has locked (its key is cleared and it will not be retried; it
 *   is deleted when the worker's task returns), and the job's queue, which graphile-worker keeps
 *   locked by that worker while the task runs, is unlocked if that very entry's holder locks it, so
 *   the next attempt need not wait for the old task to return (nor for 4 hours, should the worker
 *   die first). Nothing else of the worker's graphile pool is touched: its other running
 *   executions keep their locked entries.
 * - `holders: 'dead'` (the leader re-queues expired leases): graphile-worker would keep a dead
 *   worker's locks for 4 hours, so the pools holding these entries are force-unlocked first. Their
 *   worker stopped heartbeating (dead, or fenced by its own watchdog), so what else they hold belongs
 *   to leases that expire just the same.
 */
export async function requeueAsNextAttempt(
  sql: Sql,
  rows: readonly LostAttempt[],
  reason: (row: LostAttempt) => string,
  opts: { holders: 'live' | 'dead' } = { holders: 'live' },
): Promise<void> {
  if (rows.length === 0) return;
  const ids = rows.map((e) => e.id);
  const keys = ids.map((id) => `execution:${id}`);
  const holders = await sql<{ locked_by: string; queue_name: string | null }>(
    `select distinct locked_by, queue_name from graphile_worker.jobs where key = any($1::text[]) and locked_by is not null`,
    [keys],
  );
  if (opts.holders === 'dead' && holders.length > 0) {
    await sql(`select graphile_worker.force_unlock_workers($1::text[])`, [[...new Set(holders.map((h) => h.locked_by))]]);
  }
  await sql(`select graphile_worker.remove_job(k) from unnest($1::text[]) as k`, [keys]);
  const queues = holders.filter((h) => h.queue_name !== null);
  if (opts.holders === 'live' && queues.length > 0) {
    // No public function unlocks one queue; this is what graphile-worker's own completion does
    // (guarded by the holder, so a queue since taken by another worker is left alone).
    await sql(
      `update graphile_worker._private_job_queues q set locked_at = null, locked_by = null
         from unnest($1::text[], $2::text[]) as h(queue_name, locked_by)
        where q.queue_name = h.queue_name and q.locked_by = h.locked_by`,
      [queues.map((h) => h.queue_name), queues.map((h) => h.locked_by)],
    );
  }
  // The SYSTEM line goes after every stored line: a LogWriter locks the row before it inserts (see
  // LogWriter.write), so none is in flight now, and any stored line counts even past last_seq.
  await sql(
    `update executions e set status = 'QUEUED', attempt = e.attempt + 1, worker_id = null, lease_expires_at = null,
            started_at = null, error = u.reason,
            last_seq = greatest(e.last_seq, coalesce((select max(c.seq) from log_chunks c where c.execution_id = e.id), 0)) + 1
       from unnest($1::uuid[], $2::text[]) as u(id, reason)
      where e.id = u.id`,
    [ids, rows.map(reason)],
  );
  await sql(
    `insert into log_chunks (execution_id, seq, stream, step, text, at)
     select id, last_seq, 'SYSTEM', null, error, now() from executions where id = any($1::uuid[])`,
    [ids],
  );
  await sql(
    `update execution_steps set status = 'PENDING', exit_code = null, started_at = null, finished_at = null where execution_id = any($1::uuid[])`,
    [ids],
  );
  // A cancel asked for while the lost attempt ran is honoured now: a claim never starts a QUEUED
  // execution with a cancel request, so re-queueing it would leave it QUEUED for ever.
  const cancelled = await sql<{ id: string }>(
    `update executions set status = 'CANCELLED', finished_at = now(), error = coalesce(error, 'cancelled')
      where id = any($1::uuid[]) and cancel_requested_at is not null returning id`,
    [ids],
  );
  const ended = new Set(cancelled.map((c) => c.id));
  if (ended.size > 0) {
    await sql(`update execution_steps set status = 'SKIPPED' where execution_id = any($1::uuid[])`, [[...ended]]);
    for (const id of ended) await enqueueArchive(sql, id);
  }
  const runs = rows.filter((e) => !ended.has(e.id));
  await enqueueRuns(sql, runs.map((e) => ({ executionId: e.id, jobId: e.job_id, priority: e.priority, runAt: null })));
}

/**
 * Hands executions this worker stopped back to the queue as their next attempt, at once, with
 * `reason` in `error` and as a SYSTEM log line (the same path as an expired lease: see
 * requeueAsNextAttempt). Only rows still RUNNING under these very claims change, so an execution
 * that finished, was cancelled or was already re-queued elsewhere is left alone.
 * Returns the executions re-queued.
 */
export async function handBack(pool: pg.Pool, fences: readonly Fence[], reason: string, log: Log): Promise<LostAttempt[]> {
  if (fences.length === 0) return [];
  const rows = await inTransaction(pool, async (sql) => {
    const lost = await sql<LostAttempt>(
      `select e.id, e.job_id, e.attempt, e.worker_id, e.priority
         from executions e join unnest($1::uuid[], $2::int[], $3::text[]) as f(id, attempt, worker) on e.id = f.id
        where e.attempt = f.attempt and e.worker_id = f.worker and e.status = 'RUNNING'
        for update of e`,
      [fences.map((f) => f.id), fences.map((f) => f.attempt), fences.map((f) => f.workerId)],
    );
    await requeueAsNextAttempt(sql, lost, (e) => `attempt ${e.attempt} handed back: ${reason}; re-queued as attempt ${e.attempt + 1}`);
    return lost;
  });
  for (const e of rows) {
    log(`execution ${e.id}: attempt ${e.attempt} handed back: ${reason}; re-queued as attempt ${e.attempt + 1}`, {
      level: 'warn', executionId: e.id, jobId: e.job_id, attempt: e.attempt, workerId: e.worker_id,
    });
  }
  return rows;
}
