import type { ConcurrencyPolicy } from './policies.js';

/** A job's executions that are waiting or running. */
export interface ActiveExecutions {
  running: string[];
  queued: string[];
}

/** Whether a new run may start now, and which active executions it replaces. */
export type OverlapDecision = { run: true; cancel: string[] } | { run: false };

/**
 * The job's `concurrency` policy, applied when a fire or a manual trigger wants a new run:
 * - `skip`: only when nothing is queued or running;
 * - `queue`: unless one already waits (at most one waiting);
 * - `replace`: always, cancelling whatever is queued or running (the new run starts after the
 *   cancelled one has ended, as the job's queue runs one at a time).
 */
export function decideOverlap(policy: ConcurrencyPolicy, active: ActiveExecutions): OverlapDecision {
  switch (policy) {
    case 'skip':
      return active.running.length + active.queued.length === 0 ? { run: true, cancel: [] } : { run: false };
    case 'queue':
      return active.queued.length === 0 ? { run: true, cancel: [] } : { run: false };
    case 'replace':
      return { run: true, cancel: [...active.running, ...active.queued] };
  }
}
