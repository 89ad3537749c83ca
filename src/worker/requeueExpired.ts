import type pg from 'pg';
import type { Log } from '../ops/log.js';
import { enqueueArchive, enqueueRuns } from '../queue/executionQueue.js';
import { inTransaction, type Sql } from '../queue/sql.js';

/** A RUNNING execution's attempt that is over without an outcome, locked by the caller's transaction. */
export interface LostAttempt {
  id: string;
  job_id: string;
  attempt: number;
  worker_id: string | null;
  priority: number;
}

/**
 * Hands every RUNNING execution whose lease has expired to a next attempt (see
 * requeueAsNextAttempt), with the reason that its worker stopped heartbeating. The old worker has
 * already stopped its container (see LeaseKeeper). Returns how many executions were re-queued.
 */
export async function requeueExpired(pool: pg.Pool, log: Log): Promise<number> {
  return inTransaction(pool, async (sql) => {
    const expired = await sql<LostAttempt>(
      `select id, job_id, attempt, worker_id, priority from executions
        where status = 'RUNNING' and lease_expires_at < now()
        order by lease_expires_at limit 200 for update skip locked`,
    );
    await requeueAsNextAttempt(sql, expired, (e) => `attempt ${e.attempt} lost: worker ${e.worker_id ?? '?'} stopped heartbeating; re-queued as attempt ${e.attempt + 1}`, {
      holders: 'dead',
    });
    for (const e of expired) {
      log(`execution ${e.id}: attempt ${e.attempt} on ${e.worker_id} expired; re-queued as attempt ${e.attempt + 1}`, {
        level: 'warn', executionId: e.id, jobId: e.job_id, attempt: e.attempt, workerId: e.worker_id,
      });
    }
    return expired.length;
  });
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
