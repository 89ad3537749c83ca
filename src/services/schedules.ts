import { isValidTimezone, nextFireTimes, parseSchedule } from '../schedule/schedule.js';
import { ValidationError } from '../errors.js';
import type { Job } from '../entities/index.js';

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

/** `schedulePreview`: the same code the scheduler uses, for a schedule not yet submitted. */
export function previewSchedule(schedule: string, timezone: string | null | undefined, count: number | null | undefined, now = new Date()): Date[] {
  const n = count ?? 5;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PREVIEW) throw new ValidationError(`count must be between 1 and ${MAX_PREVIEW}`);
  const parsed = parseSchedule(schedule);
  if (!parsed.ok) throw new ValidationError(`schedule: ${parsed.error}`);
  const tz = timezone ?? 'UTC';
  if (!isValidTimezone(tz)) throw new ValidationError(`timezone: unknown time zone "${tz}"`);
  return nextFireTimes(parsed.value, { timezone: tz, after: now, anchor: now, count: n });
}
