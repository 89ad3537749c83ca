import type { Sql } from './sql.js';

/** Tells the scheduler leader that schedules changed, so it recomputes its next wake-up now. */
export async function notifySchedulesChanged(sql: Sql): Promise<void> {
  await sql(`select pg_notify('kiln_schedules', '')`);
}
