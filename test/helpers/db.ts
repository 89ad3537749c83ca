import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The machine's Postgres, where tests create their own databases. */
export const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** Migrated once per run by globalSetup; every test database is a copy of it. */
export const TEMPLATE_DB = 'kiln_test_template';
export const TEST_DB_PREFIX = 'kiln_t_';

export function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A fresh, migrated database of its own for one test file. */
export async function createTestDatabase(): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `${TEST_DB_PREFIX}${randomBytes(6).toString('hex')}`;
  await admin(async (c) => {
    // Two copies of one template at the same instant can collide; retry briefly.
    for (let attempt = 1; ; attempt++) {
      try {
        await c.query(`create database "${name}" template "${TEMPLATE_DB}"`);
        return;
      } catch (err) {
        if (attempt >= 10 || !/being accessed by other users/.test((err as Error).message)) throw err;
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  });
  return {
    url: databaseUrl(name),
    name,
    drop: () => admin(async (c) => void (await c.query(`drop database if exists "${name}" with (force)`))),
  };
}

export { admin as withAdminClient };
