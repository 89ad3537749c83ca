import { runMigrations } from 'graphile-worker';
import type pg from 'pg';

/** graphile-worker task names used by Kiln. */
export const TASKS = {
  runExecution: 'kiln_run_execution',
  archiveLog: 'kiln_archive_log',
  housekeeping: 'kiln_housekeeping',
} as const;

/** Kiln's priority is 0..10, higher first; graphile-worker runs lower numbers first. */
export function queuePriority(kilnPriority: number): number {
  return 10 - kilnPriority;
}

/** The job key of an execution's run job: one queued run per execution. */
export function runJobKey(executionId: string): string {
  return `execution:${executionId}`;
}

/** Applies graphile-worker's schema migrations. */
export async function migrateQueue(pool: pg.Pool): Promise<void> {
  await runMigrations({ pgPool: pool, logger: undefined });
}
