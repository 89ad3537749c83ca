import type pg from 'pg';
import type { Fence } from './fence.js';

/**
 * Extends the leases of the given claims to `leaseMs` from now (Postgres's clock), in one
 * statement, locking the rows in id order as the finish does (src/executions/finishMany.ts), so the
 * two never deadlock. Returns the ids whose claim still held; the others were re-queued, finished or
 * deleted elsewhere and must stop at once.
 */
export async function renewLeases(pool: pg.Pool, fences: readonly Fence[], leaseMs: number): Promise<Set<string>> {
  const { rows } = await pool.query<{ id: string }>(
    `with held as (
       select e.id from executions e join unnest($1::uuid[], $2::int[], $3::text[]) as f(id, attempt, worker)
           on e.id = f.id and e.attempt = f.attempt and e.worker_id = f.worker
        where e.status = 'RUNNING' order by e.id for no key update of e
     )
     update executions e set lease_expires_at = now() + $4 * interval '1 millisecond'
       from held where e.id = held.id
      returning e.id`,
    [fences.map((f) => f.id), fences.map((f) => f.attempt), fences.map((f) => f.workerId), leaseMs],
  );
  return new Set(rows.map((r) => r.id));
}
