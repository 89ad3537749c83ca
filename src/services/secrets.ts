import { Secret } from '../entities/index.js';
import { ValidationError } from '../errors.js';
import { ENV_NAME_PATTERN } from '../jobfile/values.js';
import { inTransaction } from '../util/sql.js';
import type { Deps } from './deps.js';

/** Longest secret name, in characters. */
export const MAX_SECRET_NAME_LENGTH = 256;
/** Largest secret value, in UTF-8 bytes (an environment variable, not a file). */
export const MAX_SECRET_VALUE_BYTES = 64 * 1024;

/** A secret as the API shows it: never its value. */
export interface SecretInfo {
  name: string;
  createdAt: Date;
  updatedAt: Date;
}

function checkName(name: string): void {
  if (!ENV_NAME_PATTERN.test(name) || name.length > MAX_SECRET_NAME_LENGTH) {
    const message = `"${name.slice(0, 80)}" is not a valid secret name: letters, digits and _, not starting with a digit, at most ${MAX_SECRET_NAME_LENGTH} characters`;
    throw new ValidationError(message, [{ line: 1, column: 1, path: 'name', message, severity: 'error' }]);
  }
}

/**
 * Stores (or replaces) one of the owner's secrets, sealed with the server's key. Builds of the
 * owner's jobs that list it get it as an environment variable from their next run on. A new name
 * past KILN_MAX_SECRETS_PER_OWNER is refused (docs/design.md#quotas): every secret a job lists
 * is masked in each byte of its output.
 */
export async function setSecret(deps: Deps, owner: string, name: string, value: string): Promise<SecretInfo> {
  checkName(name);
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes === 0 || bytes > MAX_SECRET_VALUE_BYTES) {
    const message = `a secret's value must have 1 to ${MAX_SECRET_VALUE_BYTES} bytes, got ${bytes}`;
    throw new ValidationError(message, [{ line: 1, column: 1, path: 'value', message, severity: 'error' }]);
  }
  if (value.includes('\u0000')) {
    const message = 'a secret cannot contain a NUL character (it becomes an environment variable)';
    throw new ValidationError(message, [{ line: 1, column: 1, path: 'value', message, severity: 'error' }]);
  }
  const sealed = deps.secretBox.seal(owner, name, value);
  const max = deps.config.maxSecretsPerOwner;
  const row = await inTransaction(deps.pool, async (sql) => {
    // One lock per owner: two new names set at once cannot both take the last place.
    await sql(`select pg_advisory_xact_lock(hashtext('kiln.secrets'), hashtext($1))`, [owner]);
    const [count] = await sql<{ n: number; exists: boolean }>(
      `select count(*)::int as n, bool_or(name = $2) as exists from secrets where owner = $1`,
      [owner, name],
    );
    if (count!.exists !== true && count!.n >= max) {
      const message = `you already store ${count!.n} secrets, the most one owner may store (KILN_MAX_SECRETS_PER_OWNER = ${max}); delete one first`;
      throw new ValidationError(message, [{ line: 1, column: 1, path: 'name', message, severity: 'error' }]);
    }
    const rows = await sql<{ name: string; created_at: Date; updated_at: Date }>(
      `insert into secrets (owner, name, value, created_at, updated_at) values ($1, $2, $3, now(), now())
         on conflict (owner, name) do update set value = excluded.value, updated_at = now()
       returning name, created_at, updated_at`,
      [owner, name, sealed],
    );
    return rows[0]!;
  });
  return { name: row.name, createdAt: row.created_at, updatedAt: row.updated_at };
}

/** Removes one of the owner's secrets; false when there was none by that name. */
export async function deleteSecret(deps: Deps, owner: string, name: string): Promise<boolean> {
  checkName(name);
  const deleted = await deps.orm.em.fork().nativeDelete(Secret, { owner, name });
  return deleted > 0;
}

/** The names of the owner's secrets (never their values), by name. */
export async function listSecrets(deps: Deps, owner: string): Promise<SecretInfo[]> {
  const secrets = await deps.orm.em.fork().find(Secret, { owner }, { orderBy: { name: 'asc' }, fields: ['name', 'createdAt', 'updatedAt'] });
  return secrets.map((s) => ({ name: s.name, createdAt: s.createdAt, updatedAt: s.updatedAt }));
}
