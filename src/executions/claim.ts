import type pg from 'pg';
import type { ExecutionPlan } from '../spec/types.js';
import type { ClaimedExecution } from './fence.js';
import { inTransaction } from './sql.js';

export type ClaimResult = { kind: 'claimed'; execution: ClaimedExecution } | { kind: 'busy' } | { kind: 'gone' };

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

