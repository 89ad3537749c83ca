import { capped, compileJobFile } from './compile.js';
import type { JobFilePolicy } from './compile.js';
import type { JobFileResult } from './types.js';
import { isValidTimezone, nextFireTimes, parseSchedule } from '../schedule/schedule.js';

/**
 * Work whose cost depends on what a user sends, run in a worker thread of the API (see
 * services/offLoop.ts and docs/design.md#off-the-loop). Tasks and results are plain data:
 * they cross the thread boundary by structured clone.
 */
export type OffLoopTask = CompileTask | FireTimesTask;

/** Compile a job file; with `now`, also give each job's first fire time after it. */
export interface CompileTask {
  kind: 'compile';
  source: string;
  /** What a job file may name on this server: repositories, notification targets, secrets (the server's settings). */
  policy?: JobFilePolicy;
  /** Epoch ms; the first fire time of each job is computed from here (new or changed schedules). */
  now?: number;
}

/** The next `count` fire times of a schedule (schedulePreview, Job.nextRuns). */
export interface FireTimesTask {
  kind: 'fireTimes';
  schedule: string;
  timezone: string;
  /** Epoch ms: fire times strictly after it. */
  after: number;
  /** Epoch ms: start of an interval's count. */
  anchor: number;
  count: number;
}

/**
 * When job i of a compiled file first fires: for a cron schedule its first fire time after `now`
 * (epoch ms; null if none), for an interval its length (the first fire counts from the job's
 * anchor, set when it is stored); null for a one-off job.
 */
export type FirstRun = { kind: 'cron'; at: number | null } | { kind: 'interval'; everyMs: number } | null;

/** A compiled file, with `firstRuns` when asked for (`now`). */
export type CompileOutcome = JobFileResult & { firstRuns?: FirstRun[] };

/** Fire times as epoch ms, or why there are none (a bad schedule or time zone). */
export type FireTimesOutcome = { ok: true; times: number[] } | { ok: false; error: string };

/**
 * Most diagnostics an answer of the API lists (the last one counts the rest). A file of 1,000
 * bad schedules asked for in many aliases at once would otherwise answer megabytes, built and
 * serialised on the API's loop.
 */
export const MAX_ANSWERED_DIAGNOSTICS = 100;

export function runCompile(task: CompileTask): CompileOutcome {
  const compiled = compileJobFile(task.source, task.policy);
  const result: JobFileResult = compiled.ok
    ? { ...compiled, warnings: capped(compiled.warnings, MAX_ANSWERED_DIAGNOSTICS) }
    : { ok: false, diagnostics: capped(compiled.diagnostics, MAX_ANSWERED_DIAGNOSTICS) };
  if (!result.ok || task.now === undefined) return result;
  const now = new Date(task.now);
  const firstRuns = result.jobs.map((job): FirstRun => {
    if (job.schedule === null) return null;
    const parsed = parseSchedule(job.schedule);
    if (!parsed.ok) return null;
    if (parsed.value.kind === 'interval') return { kind: 'interval', everyMs: parsed.value.everyMs };
    return { kind: 'cron', at: nextFireTimes(parsed.value, { timezone: job.timezone, after: now, count: 1 })[0]?.getTime() ?? null };
  });
  return { ...result, firstRuns };
}

export function runFireTimes(task: FireTimesTask): FireTimesOutcome {
  const parsed = parseSchedule(task.schedule);
  if (!parsed.ok) return { ok: false, error: `schedule: ${parsed.error}` };
  if (!isValidTimezone(task.timezone)) return { ok: false, error: `timezone: unknown time zone "${task.timezone}"` };
  const times = nextFireTimes(parsed.value, { timezone: task.timezone, after: new Date(task.after), anchor: new Date(task.anchor), count: task.count });
  return { ok: true, times: times.map((d) => d.getTime()) };
}

/** The thread's entry point: one task in, its outcome out. */
export function runOffLoopTask(task: OffLoopTask): CompileOutcome | FireTimesOutcome {
  return task.kind === 'compile' ? runCompile(task) : runFireTimes(task);
}
