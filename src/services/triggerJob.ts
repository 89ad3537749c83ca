import { Execution, ExecutionTrigger } from '../entities/index.js';
import { createExecution } from './createExecution.js';
import type { Deps } from './deps.js';
import { getJob } from './findOwned.js';

/** Queues a MANUAL execution of the owner's job now, paused or not. */
export async function triggerJob(deps: Deps, owner: string, jobId: string): Promise<Execution> {
  return deps.orm.em.fork().transactional(async (em) => {
    const job = await getJob(em, owner, jobId);
    return createExecution(em, job, ExecutionTrigger.MANUAL, { defaultImage: deps.config.defaultImage });
  });
}
