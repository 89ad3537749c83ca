import type pg from 'pg';
import type { Log } from '../util/log.js';
import { requeueAsNextAttempt, type LostAttempt } from './handBack.js';
import { inTransaction } from '../util/sql.js';

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
