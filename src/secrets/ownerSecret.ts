import type pg from 'pg';
import type { SecretBox } from './SecretBox.js';

/**
 * The owner of an execution, and the plain value of their secret `name` (null when they have none
 * by that name): for secrets Kiln itself looks up by convention, such as registry credentials,
 * which the job does not list.
 */
export async function loadOwnerSecret(pool: pg.Pool, box: SecretBox, executionId: string, name: string): Promise<{ owner: string; value: string | null }> {
  const { rows } = await pool.query<{ owner: string; name: string | null; value: string | null }>(
    `select e.owner, s.name, s.value from executions e left join secrets s on s.owner = e.owner and s.name = $2 where e.id = $1`,
    [executionId, name],
  );
  const row = rows[0];
  if (row === undefined) throw new Error(`execution ${executionId} does not exist`);
  return { owner: row.owner, value: row.value === null ? null : box.open(row.owner, name, row.value) };
}
