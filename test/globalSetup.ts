import 'reflect-metadata';
import { createOrm, migrateOrm } from '../src/db/orm.js';
import { createPool } from '../src/db/pool.js';
import { migrateQueue } from '../src/executions/queue.js';
import { ageOfName, databaseUrl, LEFTOVER_AGE_SECONDS, TEMPLATE_PREFIX, TEST_DB_PREFIX, timestampedName, withAdminClient } from './helpers/db.js';

/**
 * Runs once before all test files: builds this run's migrated template database (Kiln's and
 * graphile-worker's schemas), which each test file copies, and drops what crashed runs left.
 * Other runs may be going on against the same Postgres: their databases are young, or in use,
 * and are left alone. Returns the teardown, which drops this run's template.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const template = timestampedName(`${TEMPLATE_PREFIX}_`);
  process.env.KILN_TEST_TEMPLATE_DB = template; // inherited by the test workers
  await withAdminClient(async (c) => {
    const { rows } = await c.query<{ datname: string; in_use: boolean }>(
      `select datname, exists (select 1 from pg_stat_activity a where a.datname = d.datname) as in_use
         from pg_database d where datname like $1 or datname like $2`,
      [`${TEST_DB_PREFIX}%`, `${TEMPLATE_PREFIX}%`],
    );
    for (const { datname, in_use } of rows) {
      const age = ageOfName(datname, TEST_DB_PREFIX) ?? ageOfName(datname, `${TEMPLATE_PREFIX}_`);
      const leftover = age === null ? !in_use : age > LEFTOVER_AGE_SECONDS;
      if (leftover) await c.query(`drop database if exists "${datname}" with (force)`).catch(() => undefined);
    }
    await c.query(`create database "${template}"`);
  });
  const url = databaseUrl(template);
  const orm = await createOrm(url);
  const pool = createPool(url, 2);
  try {
    await migrateOrm(orm);
    await migrateQueue(pool);
  } finally {
    await orm.close();
    await pool.end();
  }
  return async () => {
    await withAdminClient((c) => c.query(`drop database if exists "${template}" with (force)`)).catch(() => undefined);
  };
}
