import type { ExecutionPlan } from '../jobfile/types.js';

/**
 * Which claim a worker holds. Every write a worker makes about a running execution is fenced
 * by it: once the execution was re-queued as a next attempt (or finished, or cancelled), the
 * old worker's late writes match no row and change nothing.
 */
export interface Fence {
  id: string;
  attempt: number;
  workerId: string;
}

/** The row a worker needs to run an execution, as claimed. */
export interface ClaimedExecution extends Fence {
  jobId: string;
  /** Whose execution it is: whose secrets, images and storage it uses. */
  owner: string;
  number: number;
  lastSeq: number;
  plan: ExecutionPlan;
  /**
   * Seconds from the scheduled fire time to this claim (Postgres's clock for both) for the first
   * attempt of a SCHEDULE execution; null for any other (fire lateness, see KilnMetrics).
   */
  fireLatenessSec: number | null;
  /** When (epoch ms, this process's clock) the claim was sent: anything committed later happened after the claim. */
  claimSentAt: number;
  /** Whether some API process follows the owner's events (docs/design.md#live-events): then every step change is its own event. */
  followed: boolean;
}

/** SQL condition: the execution `$1` is still RUNNING under the claim (`$2` attempt, `$3` worker). */
export const FENCED = `id = $1 and attempt = $2 and worker_id = $3 and status = 'RUNNING'`;

