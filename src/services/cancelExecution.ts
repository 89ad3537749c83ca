import { LockMode } from '@mikro-orm/core';
import { Execution, ExecutionStatus, FINAL_STATUSES, StepStatus, ExecutionStep } from '../entities/index.js';
import { NotFoundError } from '../errors.js';
import { dequeueRun } from '../queue/queue.js';
import type { Deps } from './deps.js';
import { isUuid } from './paging.js';

/**
 * Cancels an execution. A queued one ends CANCELLED at once; for a running one the request is
 * recorded and the worker running it stops the container and ends it CANCELLED. A finished
 * execution is returned unchanged.
 */
export async function cancelExecution(deps: Deps, owner: string, executionId: string): Promise<Execution> {
  return deps.orm.em.fork().transactional(async (em) => {
    const execution = isUuid(executionId)
      ? await em.findOne(Execution, { id: executionId, owner }, { lockMode: LockMode.PESSIMISTIC_WRITE })
      : null;
    if (execution === null) throw new NotFoundError('execution', executionId);
    if (FINAL_STATUSES.has(execution.status)) return execution;
    execution.cancelRequestedAt ??= new Date();
    if (execution.status === ExecutionStatus.QUEUED) {
      // The runner claims an execution with a QUEUED -> RUNNING compare-and-set, so once this
      // commits no worker can start it, even if it already holds the queue entry.
      await dequeueRun(em, execution.id);
      execution.status = ExecutionStatus.CANCELLED;
      execution.finishedAt = new Date();
      execution.error = 'cancelled before it started';
      await em.nativeUpdate(ExecutionStep, { execution, status: StepStatus.PENDING }, { status: StepStatus.SKIPPED });
    }
    return execution;
  });
}
