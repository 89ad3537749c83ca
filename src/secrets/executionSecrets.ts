import type pg from 'pg';
import type { SecretBox } from './SecretBox.js';

/** A job names secrets its owner has not stored. A property of the job: retrying will not help. */
export class MissingSecretsError extends Error {
  constructor(readonly names: string[]) {
    super(`secret${names.length > 1 ? 's' : ''} ${names.map((n) => `"${n}"`).join(', ')} ${names.length > 1 ? 'are' : 'is'} not set for this job's owner (setSecret)`);
    this.name = 'MissingSecretsError';
  }
}

/**
 * The plain values of the secrets an execution's job lists, from its owner's store. Read by the
 * worker when the run starts, so a secret changed meanwhile applies to the next run.
 */
export async function loadExecutionSecrets(
  pool: pg.Pool,
  box: SecretBox,
  executionId: string,
  names: readonly string[],
): Promise<Map<string, string>> {
  if (names.length === 0) return new Map();
  const { rows } = await pool.query<{ owner: string; name: string; value: string }>(
    `select s.owner, s.name, s.value from secrets s join executions e on e.owner = s.owner
      where e.id = $1 and s.name = any($2::text[])`,
    [executionId, names],
  );
  const values = new Map(rows.map((r) => [r.name, box.open(r.owner, r.name, r.value)]));
  const missing = names.filter((n) => !values.has(n));
  if (missing.length > 0) throw new MissingSecretsError(missing);
  return values;
}
