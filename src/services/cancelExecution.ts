import { LockMode } from '@mikro-orm/core';
import { Execution, FINAL_STATUSES } from '../entities/index.js';
import { NotFoundError } from '../errors.js';
import { cancelExecutions } from '../executions/cancel.js';
import { sqlOfEm } from '../util/sql.js';
import type { Deps } from './deps.js';
import { isUuid } from './paging.js';

/**
 * Cancels an execution. A queued one ends CANCELLED at once (the runner claims with a
 * QUEUED -> RUNNING compare-and-set, so no worker can start it after this commits); for a
 * running one the request is recorded and announced on `kiln_cancel`, and the worker running it
 * stops the container and ends it CANCELLED. A finished execution is returned unchanged.
 */
export async function cancelExecution(deps: Deps, owner: string, executionId: string): Promise<Execution> {
  const em = deps.orm.em.fork();
  const id = await em.transactional(async (tem) => {
    const execution = isUuid(executionId)
      ? await tem.findOne(Execution, { id: executionId, owner }, { lockMode: LockMode.PESSIMISTIC_WRITE })
      : null;
    if (execution === null) throw new NotFoundError('execution', executionId);
    if (!FINAL_STATUSES.has(execution.status)) await cancelExecutions(sqlOfEm(tem), [execution.id], 'cancelled by its owner');
    return execution.id;
  });
  return em.fork().findOneOrFail(Execution, { id });
}
