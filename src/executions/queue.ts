import { runMigrations } from 'graphile-worker';
import type pg from 'pg';

/**
 * graphile-worker task names used by Kiln. Executions are not graphile-worker jobs (the executions
 * table is their queue, see claim.ts); graphile-worker runs Kiln's housekeeping on its crontab.
 */
export const TASKS = {
  housekeeping: 'kiln_housekeeping',
  /** Removes the store objects of deleted executions (see storeDeletions.ts). */
  storeDeletions: 'kiln_store_deletions',
} as const;

/** NOTIFY channel on which workers hear that executions became claimable (payload unused). */
export const QUEUED_CHANNEL = 'kiln_queued';

/** Applies graphile-worker's schema migrations. */
export async function migrateQueue(pool: pg.Pool): Promise<void> {
  await runMigrations({ pgPool: pool, logger: undefined });
}
