import type { EntityManager } from '@mikro-orm/postgresql';
import { Execution, ExecutionTrigger, Job } from '../entities/index.js';
import { insertExecutions } from '../executions/create.js';
import { sqlOfEm } from '../util/sql.js';

/**
 * Creates an execution of `job` with its PENDING steps and queues its run, through the same
 * SQL as the scheduler's batches. Must be called inside `em.transactional`: the rows and the
 * queue entry commit together. The plan is frozen now, so editing the job later does not
 * change this run.
 */
export async function createExecution(
  em: EntityManager,
  job: Job,
  trigger: ExecutionTrigger,
  opts: { defaultImage: string; scheduledFor?: Date | null; ref?: string },
): Promise<Execution> {
  const ref = opts.ref === undefined ? {} : { ref: opts.ref };
  const [created] = await insertExecutions(sqlOfEm(em), opts.defaultImage, [{ job, trigger, scheduledFor: opts.scheduledFor ?? null, ...ref }]);
  return em.findOneOrFail(Execution, { id: created!.id });
}
