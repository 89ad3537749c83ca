import type { EntityManager } from '@mikro-orm/postgresql';
import { runMigrations } from 'graphile-worker';
import type pg from 'pg';

/** graphile-worker task names used by Kiln. */
export const TASKS = {
  runExecution: 'kiln_run_execution',
  archiveLog: 'kiln_archive_log',
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

/**
 * Queues the run of an execution. Called with the EntityManager of the transaction that
 * inserted the execution, so the row and its queue entry commit (or vanish) together.
 */
export async function enqueueRun(em: EntityManager, executionId: string, kilnPriority: number): Promise<void> {
  await em.execute(
    `select graphile_worker.add_job(?, json_build_object('executionId', ?::text), job_key => ?, priority => ?, max_attempts => 1)`,
    [TASKS.runExecution, executionId, runJobKey(executionId), queuePriority(kilnPriority)],
  );
}

/**
 * Drops the queued run of an execution (or, when a worker already holds it, stops it from
 * being retried). The execution's own status is what the runner checks before starting.
 */
export async function dequeueRun(em: EntityManager, executionId: string): Promise<void> {
  await em.execute(`select graphile_worker.remove_job(?)`, [runJobKey(executionId)]);
}
