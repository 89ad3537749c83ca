import 'reflect-metadata';
import { createOrm, migrateOrm } from '../src/db/orm.js';
import { createPool } from '../src/db/pool.js';
import { migrateQueue } from '../src/queue/queue.js';
import { TEMPLATE_DB, TEST_DB_PREFIX, databaseUrl, withAdminClient } from './helpers/db.js';

/**
 * Runs once before all test files: builds a migrated template database (Kiln's and
 * graphile-worker's schemas) that each test file copies, and drops copies left by a crashed run.
 */
export default async function setup(): Promise<void> {
  await withAdminClient(async (c) => {
    const { rows } = await c.query<{ datname: string }>(`select datname from pg_database where datname like $1`, [`${TEST_DB_PREFIX}%`]);
    for (const { datname } of rows) await c.query(`drop database if exists "${datname}" with (force)`);
    await c.query(`drop database if exists "${TEMPLATE_DB}" with (force)`);
    await c.query(`create database "${TEMPLATE_DB}"`);
  });
  const url = databaseUrl(TEMPLATE_DB);
  const orm = await createOrm(url);
  const pool = createPool(url, 2);
  try {
    await migrateOrm(orm);
    await migrateQueue(pool);
  } finally {
    await orm.close();
    await pool.end();
  }
}
