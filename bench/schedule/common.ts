import { load1, nextSecond, sleep } from '../lib/stats.js';

/**
 * What the schedule benchmark asks of each system (Kiln and its anchors), and the pieces they
 * share: the measurement window, the per-second driver and the lateness collector.
 */

export interface LatenessOptions {
  /** Per-second schedules (or their equivalent) running at once. */
  schedules: number;
  /** Runs before the window, so start-up and first-fire effects are not measured. */
  warmupMs: number;
  /** Fires whose intended time lies in the window are measured; a multiple of 1000. */
  windowMs: number;
  /** How long after the window fires may still start and be counted. */
  drainMs: number;
  concurrency: number;
  pollMs: number;
}

export interface ThroughputOptions {
  jobs: number;
  concurrency: number;
  pollMs: number;
  timeoutMs: number;
}

/** One lateness measurement: every fire in the window, and how late the ones that ran started. */
export interface LatenessRun {
  system: string;
  schedules: number;
  /** Fires whose intended time lies in the window (schedules x window seconds). */
  expected: number;
  /** Lateness (ms, start - intended time) of the window's fires that started by the deadline. */
  samples: number[];
  /** Extra lines for the report (method, outcomes, breakdown). */
  detail: string[];
  /** 1-minute load average when the measurement ended. */
  load: string;
  error?: string;
  /** Kiln only: its API's answers to the history query during the window. */
  bystander?: BystanderResult;
}

export interface ThroughputRun {
  system: string;
  jobs: number;
  /** From enqueueing the first job to the last one recorded as done. */
  seconds: number;
  perSecond: number;
  /** Statements sent through `pg` per finished job (NaN for Redis). */
  statementsPerJob: number;
  transactionsPerJob: number;
  /** CPU per finished job of this Node process, and of the database backends or redis-server. */
  nodeCpuMsPerJob: number;
  serverCpuMsPerJob: number;
  /** What each system keeps of a finished job. */
  history: string;
  detail: string[];
  load: string;
  error?: string;
  /** Kiln only: its API's answers to the history query while the jobs ran. */
  bystander?: BystanderResult;
}

/**
 * The herd: `jobs` jobs all due at one instant (Kiln: one cron fire time each; the anchors: the
 * same number of jobs due then, in each system's own way).
 */
export interface HerdOptions {
  jobs: number;
  /** The instant is this long after the jobs start being set up (room for the set-up itself). */
  leadMs: number;
  /** How long after the instant jobs may still start and be counted. */
  timeoutMs: number;
  concurrency: number;
  pollMs: number;
}

export interface HerdRun {
  system: string;
  jobs: number;
  /** The instant all jobs were due (epoch ms). */
  at: number;
  /** Lateness (ms, start - the instant) of each job that started by the deadline. */
  samples: number[];
  /** Kiln: ticks of the instant recorded FIRED; anchors: jobs that were enqueued for it. */
  fired: number;
  detail: string[];
  load: string;
  error?: string;
  bystander?: BystanderResult;
}

/** What the bystander (a GraphQL history query at a steady rate against Kiln's API) saw during one load. */
export interface BystanderResult {
  /** ms from each query's intended send time to its parsed answer, for answers without errors. */
  samples: number[];
  /** Queries sent. */
  sent: number;
  /** Queries that failed: HTTP or GraphQL errors, time-outs, no answer by the end. */
  errors: number;
  firstError?: string;
  /** Intended sends left out because too many queries were still unanswered. */
  skipped: number;
  /** Executions on the last page answered (the history is the bench user's own). */
  lastRows: number;
  /** Longest delay between a query's intended send time and its send (the event loop it shares with Kiln). */
  sendLagMaxMs: number;
}

/** The window: whole seconds [start, end), starting once the warm-up after `readyAt` is over. */
export interface Window {
  start: number;
  end: number;
}

export function planWindow(readyAt: number, o: LatenessOptions): Window {
  const start = nextSecond(readyAt + o.warmupMs);
  return { start, end: start + o.windowMs };
}

export const inWindow = (w: Window, t: number) => t >= w.start && t < w.end;

/**
 * The spread load: schedule i fires once a minute, at second `i % 60` (6-field cron
 * `${i % 60} * * * * *`), so n schedules make about n / 60 fires every second.
 */
export const spreadSecond = (i: number) => i % 60;

/** How many of `n` spread schedules fire at second `s` (0..59) of each minute. */
export function spreadCountAt(n: number, s: number): number {
  return s < n ? Math.floor((n - 1 - s) / 60) + 1 : 0;
}

/** Second of the minute (0..59, UTC) of epoch ms `t`. */
export const secondOfMinute = (t: number) => Math.floor(t / 1000) % 60;

/** Fires of `n` spread schedules whose time lies in the window. */
export function spreadExpected(n: number, w: Window): number {
  let total = 0;
  for (let t = w.start; t < w.end; t += 1000) total += spreadCountAt(n, secondOfMinute(t));
  return total;
}

/** Lateness samples of fires in the window, reported by an in-process handler. */
export class Samples {
  readonly values: number[] = [];
  constructor(private readonly window: Window) {}
  add(intendedMs: number, startedMs: number): void {
    if (inWindow(this.window, intendedMs)) this.values.push(startedMs - intendedMs);
  }
  /** Resolves when `expected` fires were seen or `deadline` (epoch ms) passed. */
  async drain(expected: number, deadline: number): Promise<void> {
    while (this.values.length < expected && Date.now() < deadline) await sleep(50);
  }
}

/**
 * Calls `fire(t)` for each whole second t in [first, until), at `t - leadMs`. Calls run one after
 * the other: a slow call delays the next, as it would delay a real scheduler built this way.
 */
export function secondDriver(first: number, until: number, leadMs: number, fire: (t: number) => Promise<void>): { done: Promise<void>; stop(): void } {
  let stopped = false;
  const done = (async () => {
    for (let t = first; t < until && !stopped; t += 1000) {
      await sleep(t - leadMs - Date.now());
      if (!stopped) await fire(t);
    }
  })();
  return { done, stop: () => void (stopped = true) };
}

/** Runs `fn`, turning a failure into a row that says so, so one broken system does not hide the others. */
export async function guarded<T extends { error?: string; load: string }>(fn: () => Promise<T>, fallback: Omit<T, 'error' | 'load'>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    console.error(err);
    return { ...fallback, error: (err as Error).message, load: load1() } as T;
  }
}
