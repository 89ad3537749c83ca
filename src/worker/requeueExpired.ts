import type pg from 'pg';
import { enqueueRuns } from '../queue/executionQueue.js';
import { inTransaction } from '../queue/sql.js';

/**
 * Hands every RUNNING execution whose lease has expired to a next attempt: back to QUEUED with
 * `attempt + 1` and the reason in `error`, its steps PENDING again, a SYSTEM line in its log,
 * and a fresh queue entry. graphile-worker would keep the dead worker's lock for 4 hours, so
 * that worker is force-unlocked first. The old worker is fenced by the attempt number (its late
 * writes match no row) and has already stopped its container (see LeaseKeeper).
 * Returns how many executions were re-queued.
 */
export async function requeueExpired(pool: pg.Pool, log: (m: string) => void): Promise<number> {
  return inTransaction(pool, async (sql) => {
    const expired = await sql<{ id: string; job_id: string; attempt: number; worker_id: string | null; priority: number }>(
      `select id, job_id, attempt, worker_id, priority from executions
        where status = 'RUNNING' and lease_expires_at < now()
        order by lease_expires_at limit 200 for update skip locked`,
    );
    if (expired.length === 0) return 0;
    const ids = expired.map((e) => e.id);
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
              started_at = null, last_seq = e.last_seq + 1,
              error = 'attempt ' || e.attempt || ' lost: worker ' || coalesce(e.worker_id, '?') || ' stopped heartbeating; re-queued as attempt ' || (e.attempt + 1)
        where e.id = any($1::uuid[])`,
      [ids],
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
    await enqueueRuns(sql, expired.map((e) => ({ executionId: e.id, jobId: e.job_id, priority: e.priority, runAt: null })));
    for (const e of expired) log(`execution ${e.id}: attempt ${e.attempt} on ${e.worker_id} expired; re-queued as attempt ${e.attempt + 1}`);
    return expired.length;
  });
}
