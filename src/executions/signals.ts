import { createHash } from 'node:crypto';
import type { Sql } from '../util/sql.js';

/** Tells the scheduler leader that schedules changed, so it recomputes its next wake-up now. */
export async function notifySchedulesChanged(sql: Sql): Promise<void> {
  await sql(`select pg_notify('kiln_schedules', '')`);
}

/** The channel of job events (docs/design.md#job-events); src/events/channels.ts names it for listeners. */
export const JOB_CHANNEL = 'kiln_job';

/** What happened to a job. */
export enum JobChange {
  CREATED = 'CREATED',
  UPDATED = 'UPDATED',
  PAUSED = 'PAUSED',
  RESUMED = 'RESUMED',
  DELETED = 'DELETED',
}

/** One job's change as the job event carries it: its id, the change, and whether it is paused after it. */
export interface JobChangeEntry {
  id: string;
  change: JobChange;
  paused: boolean;
}

/**
 * The owner as job events name it: a hash, so that the payload has the same small size for any
 * `sub` (an owner has no length limit, and a deleted job's owner cannot be looked up afterwards).
 */
export function ownerKey(owner: string): string {
  return createHash('sha256').update(owner).digest('hex');
}

/** Entries per NOTIFY: ~55 bytes each keeps a payload far under NOTIFY's 8000-byte limit. */
const ENTRIES_PER_NOTIFY = 100;

/**
 * Tells live subscribers, at the commit of the caller's transaction, that the owner's jobs
 * changed: one NOTIFY (one per 100 jobs of a large submit), and none at all when no API process
 * follows the owner (kiln_event_interest), since a NOTIFY takes a cluster-wide lock at commit.
 * Only the rare mutations of a job (submit, pause, resume, delete) call this, never the scheduler
 * or the runner.
 */
export async function notifyJobsChanged(sql: Sql, owner: string, changes: readonly JobChangeEntry[]): Promise<void> {
  if (changes.length === 0) return;
  const key = ownerKey(owner);
  const payloads: string[] = [];
  for (let i = 0; i < changes.length; i += ENTRIES_PER_NOTIFY) {
    const jobs = changes.slice(i, i + ENTRIES_PER_NOTIFY).map((c) => [c.id, c.change, c.paused]);
    payloads.push(JSON.stringify({ owner: key, jobs }));
  }
  await sql(`select pg_notify($1, p) from unnest($2::text[]) as p where kiln_owner_followed($3)`, [JOB_CHANNEL, payloads, owner]);
}
