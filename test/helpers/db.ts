import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The machine's Postgres, where tests create their own databases. */
export const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** Names of the per-run templates: `kiln_test_template_<epoch seconds>_<random>`. */
export const TEMPLATE_PREFIX = 'kiln_test_template';
/** Names of test databases: `kiln_t_<epoch seconds>_<random>`. */
export const TEST_DB_PREFIX = 'kiln_t_';
/** Databases of other runs are only removed once older than this (a crashed run's leftovers). */
export const LEFTOVER_AGE_SECONDS = 6 * 3600;

/**
 * Migrated once per run by globalSetup; every test database of the run is a copy of it. Each run
 * has its own (globalSetup names it in the environment its workers inherit), so that several
 * people can run the suite on one Postgres at the same time.
 */
export function templateDb(): string {
  return process.env.KILN_TEST_TEMPLATE_DB ?? TEMPLATE_PREFIX;
}

/** A database name with its creation time in it, so leftovers can be told from live ones. */
export function timestampedName(prefix: string): string {
  return `${prefix}${Math.floor(Date.now() / 1000)}_${randomBytes(5).toString('hex')}`;
}

/** Seconds since the name was made by timestampedName, or null for a name of another shape. */
export function ageOfName(name: string, prefix: string): number | null {
  const match = new RegExp(`^${prefix}(\\d{10})_`).exec(name);
  return match ? Math.floor(Date.now() / 1000) - Number(match[1]) : null;
}

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
  const name = timestampedName(TEST_DB_PREFIX);
  await admin(async (c) => {
    // Two copies of one template at the same instant can collide; retry briefly.
    for (let attempt = 1; ; attempt++) {
      try {
        await c.query(`create database "${name}" template "${templateDb()}"`);
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
