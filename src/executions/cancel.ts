import type { Sql } from '../util/sql.js';

/**
 * Cancels executions: QUEUED ones end CANCELLED now (their queue entries removed); RUNNING ones
 * get `cancel_requested_at` and a `kiln_cancel` notification, and their worker stops them.
 * Finished ones are left alone. Returns the ids that were still active.
 */
export async function cancelExecutions(sql: Sql, ids: string[], reason: string): Promise<string[]> {
  if (ids.length === 0) return [];
  const queued = await sql<{ id: string }>(
    `update executions set status = 'CANCELLED', finished_at = now(), error = $2, cancel_requested_at = coalesce(cancel_requested_at, now())
      where id = any($1::uuid[]) and status = 'QUEUED' returning id`,
    [ids, reason],
  );
  if (queued.length > 0) {
    const q = queued.map((r) => r.id);
    await sql(`update execution_steps set status = 'SKIPPED' where execution_id = any($1::uuid[]) and status = 'PENDING'`, [q]);
  }
  const running = await sql<{ id: string }>(
    `update executions set cancel_requested_at = coalesce(cancel_requested_at, now()), error = coalesce(error, $2)
      where id = any($1::uuid[]) and status = 'RUNNING' returning id`,
    [ids, reason],
  );
  for (const { id } of running) await sql(`select pg_notify('kiln_cancel', $1)`, [id]);
  return [...queued, ...running].map((r) => r.id);
}
