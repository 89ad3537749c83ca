import type pg from 'pg';
import type { Log } from '../ops/log.js';
import { enqueueRuns } from '../queue/executionQueue.js';
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
    await requeueAsNextAttempt(sql, expired, (e) => `attempt ${e.attempt} lost: worker ${e.worker_id ?? '?'} stopped heartbeating; re-queued as attempt ${e.attempt + 1}`);
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
 * line in the log, and a fresh queue entry. graphile-worker would keep a dead worker's lock for 4
 * hours, so the holders of the old queue entries are force-unlocked first. The old worker is fenced
 * by the attempt number (its late writes match no row); its container must already be gone.
 */
export async function requeueAsNextAttempt(sql: Sql, rows: readonly LostAttempt[], reason: (row: LostAttempt) => string): Promise<void> {
  if (rows.length === 0) return;
  const ids = rows.map((e) => e.id);
  const holders = await sql<{ locked_by: string }>(
    `select distinct locked_by from graphile_worker.jobs where key = any($1::text[]) and locked_by is not null`,
    [ids.map((id) => `execution:${id}`)],
  );
  if (holders.length > 0) {
    await sql(`select graphile_worker.force_unlock_workers($1::text[])`, [holders.map((h) => h.locked_by)]);
  }
  await sql(`select graphile_worker.remove_job('execution:' || e) from unnest($1::uuid[]) as e`, [ids]);
  await sql(
    `update executions e set status = 'QUEUED', attempt = e.attempt + 1, worker_id = null, lease_expires_at = null,
            started_at = null, last_seq = e.last_seq + 1, error = u.reason
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
  await enqueueRuns(sql, rows.map((e) => ({ executionId: e.id, jobId: e.job_id, priority: e.priority, runAt: null })));
}
