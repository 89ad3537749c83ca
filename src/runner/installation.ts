import type pg from 'pg';

/** Label holding the installation id: the reaper only touches containers that carry its own. */
export const INSTALLATION_LABEL = 'kiln.installation';

/**
 * This Kiln database's installation id, created by the first worker that asks. Created at run
 * time rather than by a migration, so that databases copied from one migrated template (tests,
 * staging copies made before first use) each get their own.
 */
export async function installationId(pool: pg.Pool): Promise<string> {
  await pool.query(`insert into kiln_installation (singleton, id) values (true, gen_random_uuid()) on conflict (singleton) do nothing`);
  const { rows } = await pool.query<{ id: string }>(`select id from kiln_installation`);
  return rows[0]!.id;
}
