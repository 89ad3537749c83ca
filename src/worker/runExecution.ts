import { claimExecution } from '../executions/claim.js';
import type { ClaimedExecution } from '../executions/fence.js';
import type { LeaseKeeper } from './leases.js';
import { ExecutionRun } from './run/ExecutionRun.js';
import type { RunDeps } from './run/RunDeps.js';

/** What running an execution needs from the worker process. */
export interface RunnerDeps extends RunDeps {
  /** Its `leaseMs` is the claim's lease; the keeper renews it (see RunRegistry). */
  leases: LeaseKeeper;
}

/**
 * Runs one execution end to end: claims it, then runs it (see runClaimed). A non-zero step is a
 * FAILED execution, not an error: this returns normally.
 */
export async function runExecution(deps: RunnerDeps, executionId: string): Promise<void> {
  const claim = await claimExecution(deps.pool, executionId, deps.workerId, deps.leases.leaseMs);
  // Busy: another execution of its job runs; it stays QUEUED and a dispatcher claims it later.
  // Gone: cancelled before it started, already run, or deleted.
  if (claim.kind !== 'claimed') return;
  await runClaimed(deps, claim.execution);
}

/**
 * Runs an execution this worker has claimed (see ExecutionRun), to its end. `onRecording` is told
 * when the run's work is over and its outcome is being written (its slot may take the next run).
 */
export async function runClaimed(deps: RunnerDeps, claimed: ClaimedExecution, onRecording?: () => void): Promise<void> {
  await new ExecutionRun(deps, claimed, onRecording).run();
}
