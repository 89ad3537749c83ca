import { nextFireTimes, parseSchedule } from '../schedule/schedule.js';
import { ValidationError } from '../errors.js';
import type { Job } from '../entities/index.js';
import type { Deps } from './deps.js';

/**
 * The next `count` fire times of a job's schedule strictly after `after` (empty for one-off
 * jobs). The scheduler's planner walks the same function, so what the API shows is what fires.
 */
export function upcomingRuns(job: Pick<Job, 'schedule' | 'timezone' | 'scheduleAnchor'>, after: Date, count: number): Date[] {
  if (job.schedule === null) return [];
  const parsed = parseSchedule(job.schedule);
  if (!parsed.ok) return [];
  return nextFireTimes(parsed.value, { timezone: job.timezone, after, anchor: job.scheduleAnchor, count });
}

/** The job's next run as clients see it: none while paused (the scheduler's cursor still moves). */
export function visibleNextRunAt(job: Pick<Job, 'paused' | 'nextRunAt'>): Date | null {
  return job.paused ? null : job.nextRunAt;
}

export const MAX_PREVIEW = 100;

/**
 * `schedulePreview`: the same code the scheduler uses, for a schedule not yet submitted; computed
 * in the off-loop pool (docs/design.md#off-the-loop).
 */
export async function previewSchedule(
  deps: Pick<Deps, 'offLoop'>,
  owner: string,
  schedule: string,
  timezone: string | null | undefined,
  count: number | null | undefined,
  now = new Date(),
): Promise<Date[]> {
  const n = count ?? 5;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PREVIEW) throw new ValidationError(`count must be between 1 and ${MAX_PREVIEW}`);
  return fireTimesOffLoop(deps, owner, schedule, timezone ?? 'UTC', now, now, n);
}

/** Fire times from the off-loop pool; a bad schedule or time zone is a ValidationError. */
export async function fireTimesOffLoop(
  deps: Pick<Deps, 'offLoop'>,
  owner: string,
  schedule: string,
  timezone: string,
  after: Date,
  anchor: Date,
  count: number,
): Promise<Date[]> {
  const outcome = await deps.offLoop.fireTimes(owner, schedule, timezone, after, anchor, count);
  if (!outcome.ok) throw new ValidationError(outcome.error);
  return outcome.times.map((ms) => new Date(ms));
}
