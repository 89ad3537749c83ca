import { Execution, ExecutionStatus, Job } from '../entities/index.js';
import { dequeueRun } from '../queue/queue.js';
import type { Deps } from './deps.js';
import { getJob } from './findOwned.js';
import { computeNextRunAt } from './schedules.js';

/** Stops new fires; queued and running executions go on. */
export async function pauseJob(deps: Deps, owner: string, jobId: string): Promise<Job> {
  return deps.orm.em.fork().transactional(async (em) => {
    const job = await getJob(em, owner, jobId);
    job.paused = true;
    job.nextRunAt = null;
    return job;
  });
}

/** Fires again from the next fire time after now. */
export async function resumeJob(deps: Deps, owner: string, jobId: string): Promise<Job> {
  return deps.orm.em.fork().transactional(async (em) => {
    const job = await getJob(em, owner, jobId);
    job.paused = false;
    job.nextRunAt = computeNextRunAt(job, new Date());
    return job;
  });
}

/**
 * Deletes the job and its history. Queued runs are dequeued; a running execution's worker
 * sees its row gone at its next cancel check and destroys the container.
 */
export async function deleteJob(deps: Deps, owner: string, jobId: string): Promise<boolean> {
  return deps.orm.em.fork().transactional(async (em) => {
    const job = await getJob(em, owner, jobId);
    const queued = await em.find(Execution, { job, status: ExecutionStatus.QUEUED });
    for (const execution of queued) await dequeueRun(em, execution.id);
    em.remove(job);
    return true;
  });
}
