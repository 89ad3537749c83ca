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
 * The plain values of those of `owner`'s secrets among `names` that they have stored, in one
 * read (none when `names` is empty). Read by the worker when a run starts, so a secret changed
 * meanwhile applies to the next run.
 */
export async function loadOwnerSecrets(pool: pg.Pool, box: SecretBox, owner: string, names: readonly string[]): Promise<Map<string, string>> {
  if (names.length === 0) return new Map();
  const { rows } = await pool.query<{ name: string; value: string }>(`select name, value from secrets where owner = $1 and name = any($2::text[])`, [
    owner,
    names,
  ]);
  return new Map(rows.map((r) => [r.name, box.open(owner, r.name, r.value)]));
}

/** Throws {@link MissingSecretsError} naming those of `names` that `values` lacks. */
export function requireSecrets(values: ReadonlyMap<string, string>, names: readonly string[]): void {
  const missing = names.filter((n) => !values.has(n));
  if (missing.length > 0) throw new MissingSecretsError(missing);
}
