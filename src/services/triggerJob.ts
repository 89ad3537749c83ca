import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Execution, ExecutionTrigger, Job } from '../entities/index.js';
import { ConflictError, NotFoundError } from '../errors.js';
import { activeExecutions } from '../executions/active.js';
import { cancelExecutions } from '../executions/cancel.js';
import { sqlOfEm } from '../util/sql.js';
import { createExecution } from './createExecution.js';
import type { Deps } from './deps.js';
import { isUuid } from './paging.js';
import { decideOverlap } from '../schedule/overlap.js';

/**
 * Queues a MANUAL execution of the owner's job now, paused or not, obeying the job's
 * `concurrency` policy like a scheduled fire: `skip` refuses (CONFLICT) while one is queued or
 * running, `queue` while one already waits, `replace` cancels them first.
 */
export async function triggerJob(deps: Deps, owner: string, jobId: string): Promise<Execution> {
  return deps.orm.em.fork().transactional(async (em) => {
    // The job's row lock serialises this with the scheduler's fires and other triggers.
    const job = isUuid(jobId) ? await em.findOne(Job, { id: jobId, owner }, { lockMode: LockMode.PESSIMISTIC_WRITE }) : null;
    if (job === null) throw new NotFoundError('job', jobId);
    return queueManualRun(deps, em, job);
  });
}

/**
 * The body of {@link triggerJob} for a `job` already locked in `em`'s transaction (a webhook
 * delivery records itself in the same one, as a WEBHOOK run). `ref` replaces the job's checkout
 * ref for this run.
 */
export async function queueManualRun(
  deps: Deps,
  em: EntityManager,
  job: Job,
  ref?: string,
  trigger: ExecutionTrigger.MANUAL | ExecutionTrigger.WEBHOOK = ExecutionTrigger.MANUAL,
): Promise<Execution> {
  const sql = sqlOfEm(em);
  const active = (await activeExecutions(sql, [job.id])).get(job.id)!;
  const decision = decideOverlap(job.definition.concurrency, active);
  if (!decision.run) {
    throw new ConflictError(
      `job "${job.name}" already has ${active.running.length > 0 ? 'a running' : 'a queued'} execution and its concurrency policy is "${job.definition.concurrency}"`,
    );
  }
  await cancelExecutions(sql, decision.cancel, 'replaced by a manual trigger (concurrency: replace)');
  return createExecution(em, job, trigger, { defaultImage: deps.config.defaultImage, ...(ref === undefined ? {} : { ref }) });
}
