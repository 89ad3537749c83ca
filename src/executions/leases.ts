import type pg from 'pg';
import type { Fence } from './fence.js';

/**
 * Extends the leases of the given claims to `leaseMs` from now (Postgres's clock), in one
 * statement. Returns the ids whose claim still held; the others were re-queued, finished or
 * deleted elsewhere and must stop at once.
 */
export async function renewLeases(pool: pg.Pool, fences: readonly Fence[], leaseMs: number): Promise<Set<string>> {
  const { rows } = await pool.query<{ id: string }>(
    `update executions e set lease_expires_at = now() + $4 * interval '1 millisecond'
       from unnest($1::uuid[], $2::int[], $3::text[]) as f(id, attempt, worker)
      where e.id = f.id and e.attempt = f.attempt and e.worker_id = f.worker and e.status = 'RUNNING'
      returning e.id`,
    [fences.map((f) => f.id), fences.map((f) => f.attempt), fences.map((f) => f.workerId), leaseMs],
  );
  return new Set(rows.map((r) => r.id));
}
