import type { EntityManager } from '@mikro-orm/postgresql';
import { Execution, Job, Tick } from '../entities/index.js';
import { decodeCursor, pageSize, toPage, type Page } from './paging.js';
import type { Deps } from './deps.js';
import { fireTimesOffLoop } from './schedules.js';
import { ValidationError } from '../errors.js';
import { readInZone } from '../schedule/schedule.js';

/** The owner's jobs ordered by name, keyset-paginated on the name (unique per owner). */
export async function listJobs(em: EntityManager, owner: string, first?: number | null, after?: string | null): Promise<Page<Job>> {
  const size = pageSize(first);
  const where: Record<string, unknown> = { owner };
  if (after) {
    const [name] = decodeCursor(after, ['string']) as [string];
    where.name = { $gt: name };
  }
  const rows = await em.find(Job, where, { orderBy: { name: 'asc' }, limit: size + 1 });
  return toPage(rows, size, (j) => [j.name]);
}

/**
 * Jobs by id, in one statement: the `job` of every row of an execution list. Not owner-scoped:
 * callers pass the jobs of executions already read for their owner.
 */
export async function jobsById(em: EntityManager, ids: readonly string[]): Promise<Map<string, Job>> {
  if (ids.length === 0) return new Map();
  return new Map((await em.find(Job, { id: { $in: [...ids] } })).map((job) => [job.id, job]));
}

/** The job's newest execution, or null. */
export async function lastExecutionOf(em: EntityManager, job: Job): Promise<Execution | null> {
  return em.findOne(Execution, { job }, { orderBy: { createdAt: 'desc', id: 'desc' } });
}

export const MAX_NEXT_RUNS = 100;

/** `Job.nextRuns(count)`: upcoming fire times, none while paused; computed off the loop. */
export async function nextRunsOf(deps: Pick<Deps, 'offLoop'>, job: Job, count: number | null | undefined, now = new Date()): Promise<Date[]> {
  const n = count ?? 5;
  if (!Number.isInteger(n) || n < 1 || n > MAX_NEXT_RUNS) throw new ValidationError(`count must be between 1 and ${MAX_NEXT_RUNS}`);
  if (job.paused || job.schedule === null) return [];
  // A stored schedule that no longer parses (refused by a later Kiln) has no next runs, as before.
  return fireTimesOffLoop(deps, job.owner, job.schedule, job.timezone, now, job.scheduleAnchor, n).catch((error: unknown) => {
    if (error instanceof ValidationError) return [];
    throw error;
  });
}

/** A fire time with how the job's time zone reads it (docs/design.md#schedule-page). */
export interface FireTime {
  at: Date;
  wallClock: string;
  utcOffset: string;
}

/** `Job.nextFires(count)`: `nextRunsOf`, each time with its wall clock and UTC offset in the job's zone. */
export async function nextFiresOf(deps: Pick<Deps, 'offLoop'>, job: Job, count: number | null | undefined, now = new Date()): Promise<FireTime[]> {
  const times = await nextRunsOf(deps, job, count, now);
  return times.map((at) => ({ at, ...readInZone(at.getTime(), job.timezone) }));
}

/** A job's tick ledger, newest fire time first, keyset-paginated on the fire time. */
export async function listTicks(em: EntityManager, jobId: string, first?: number | null, after?: string | null): Promise<Page<Tick>> {
  const size = pageSize(first);
  const where: Record<string, unknown> = { jobId };
  if (after) {
    const [at] = decodeCursor(after, ['string']) as [string];
    const ts = new Date(at);
    if (Number.isNaN(ts.getTime())) throw new ValidationError('invalid cursor');
    where.fireTime = { $lt: ts };
  }
  const rows = await em.find(Tick, where, { orderBy: { fireTime: 'desc' }, limit: size + 1 });
  return toPage(rows, size, (t) => [t.fireTime.toISOString()]);
}
