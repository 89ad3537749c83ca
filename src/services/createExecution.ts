import type { EntityManager } from '@mikro-orm/postgresql';
import { Execution, ExecutionStep, ExecutionTrigger, Job } from '../entities/index.js';
import { enqueueRun } from '../queue/queue.js';
import { toExecutionPlan } from '../spec/compile.js';

/**
 * Creates an execution of `job` with its steps (PENDING) and queues its run. Must be called
 * inside a transaction (`em.transactional`): the rows and the queue entry commit together.
 * The plan is frozen now, so editing the job later does not change this run.
 */
export async function createExecution(
  em: EntityManager,
  job: Job,
  trigger: ExecutionTrigger,
  opts: { defaultImage: string; scheduledFor?: Date | null; retryOf?: string | null },
): Promise<Execution> {
  // The increment is atomic under the row lock it takes, so numbers never repeat.
  const [row] = await em.execute<{ execution_count: number }[]>(
    `update jobs set execution_count = execution_count + 1 where id = ? returning execution_count`,
    [job.id],
  );
  if (!row) throw new Error(`job ${job.id} vanished while queueing an execution`);
  const plan = toExecutionPlan(job.definition, { image: opts.defaultImage });
  const execution = em.create(Execution, {
    job,
    owner: job.owner,
    number: row.execution_count,
    trigger,
    priority: job.priority,
    plan,
    scheduledFor: opts.scheduledFor ?? null,
    retryOf: opts.retryOf ?? null,
  });
  for (const step of plan.steps) {
    em.create(ExecutionStep, { execution, index: step.index, name: step.name });
  }
  await em.flush();
  await enqueueRun(em, execution.id, job.priority);
  return execution;
}
