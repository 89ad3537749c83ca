import type { EntityManager } from '@mikro-orm/postgresql';
import { CompiledQuery } from 'kysely';
import type pg from 'pg';

/**
 * A way to run one SQL statement with `$n` parameters (arrays passed natively) inside whatever
 * transaction the caller holds: the ORM's, or a pg client's. Queue operations take one, so the
 * same code serves the API (ORM) and the scheduler (plain pg, in batches).
 */
// biome-ignore lint/suspicious/noExplicitAny: rows are untyped unless the caller names R, as in pg
export type Sql = <R = Record<string, any>>(text: string, params?: unknown[]) => Promise<R[]>;

/** Statements on a pg pool or checked-out client. */
export function sqlOfPg(client: pg.Pool | pg.PoolClient): Sql {
  return async (text, params = []) => (await client.query(text, params)).rows;
}

/**
 * Statements in the ORM transaction `em` is in (call inside `em.transactional`).
 *
 * Through `em.getKysely()`, MikroORM's public handle on the connection of the current transaction,
 * because it binds parameters natively: MikroORM's own `em.execute` inlines values into the text
 * at `?` placeholders, which rejects `$n` and sends a JS array as a scalar (the batched statements
 * pass arrays to `unnest`). kysely is declared in package.json at the exact version MikroORM pins,
 * so there is one copy.
 */
export function sqlOfEm(em: EntityManager): Sql {
  if (!em.isInTransaction()) throw new Error('sqlOfEm needs an EntityManager inside a transaction');
  const trx = em.getKysely();
  return async (text, params = []) => (await trx.executeQuery(CompiledQuery.raw(text, params))).rows as never;
}

/** Runs `fn` in a transaction on one pool client. */
export async function inTransaction<T>(pool: pg.Pool, fn: (sql: Sql, client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const result = await fn(sqlOfPg(client), client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
