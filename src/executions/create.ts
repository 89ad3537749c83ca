import { randomUUID } from 'node:crypto';
import type { ExecutionTrigger } from '../entities/enums.js';
import { toExecutionPlan } from '../spec/compile.js';
import type { JobSpec } from '../spec/types.js';
import { TASKS, queuePriority } from './queue.js';
import type { Sql } from './sql.js';

/**
 * Operations that change executions together with their graphile-worker entries. Each takes
 * the caller's transaction (`Sql`), so rows and queue entries commit or vanish together.
 *
 * Invariant: all executions of one job share one graphile-worker queue, which runs its entries
 * one at a time. That is the first line of "never two at once"; the claim's check of running
 * executions under the job's row lock is the second.
 */

/** Attempts graphile-worker makes of a run entry; a run only throws when the job is busy. */
const RUN_MAX_ATTEMPTS = 25;

export interface NewExecution {
  job: { id: string; owner: string; priority: number; definition: JobSpec };
  trigger: ExecutionTrigger;
  scheduledFor?: Date | null;
  retryOf?: string | null;
  retryNumber?: number;
  /** Not before this time (retry backoff); default now. */
  runAt?: Date | null;
}

export interface CreatedExecution {
  id: string;
  jobId: string;
  number: number;
}

/**
 * Inserts executions (numbered per job), their PENDING steps and their queue entries, in bulk.
 * Returns them in input order.
 */
export async function insertExecutions(sql: Sql, defaultImage: string, items: NewExecution[]): Promise<CreatedExecution[]> {
  if (items.length === 0) return [];
  const perJob = new Map<string, number>();
  for (const it of items) perJob.set(it.job.id, (perJob.get(it.job.id) ?? 0) + 1);
  // Atomic under the job rows' locks: numbers never repeat, whoever inserts concurrently.
  const counted = await sql<{ id: string; execution_count: number }>(
    `update jobs j set execution_count = j.execution_count + v.n
       from unnest($1::uuid[], $2::int[]) as v(id, n) where j.id = v.id
     returning j.id, j.execution_count`,
    [[...perJob.keys()], [...perJob.values()]],
  );
  const nextNumber = new Map(counted.map((r) => [r.id, r.execution_count - perJob.get(r.id)! + 1]));
  const created: CreatedExecution[] = [];
  const plans: string[] = [];
  const stepRows: { exec: string[]; index: number[]; name: string[] } = { exec: [], index: [], name: [] };
  for (const it of items) {
    const number = nextNumber.get(it.job.id);
    if (number === undefined) throw new Error(`job ${it.job.id} vanished while queueing an execution`);
    nextNumber.set(it.job.id, number + 1);
    const id = randomUUID();
    const plan = toExecutionPlan(it.job.definition, { image: defaultImage });
    plans.push(JSON.stringify(plan));
    for (const step of plan.steps) {
      stepRows.exec.push(id);
      stepRows.index.push(step.index);
      stepRows.name.push(step.name);
    }
    created.push({ id, jobId: it.job.id, number });
  }
  await sql(
    `insert into executions (id, job_id, owner, number, status, trigger, attempt, priority, plan, scheduled_for,
                             queued_at, last_seq, artifacts, retry_of, retry_number, created_at)
     select u.id, u.job_id, u.owner, u.number, 'QUEUED', u.trigger, 1, u.priority, u.plan, u.scheduled_for,
            now(), 0, '[]', u.retry_of, u.retry_number, now()
       from unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::smallint[], $7::jsonb[],
                   $8::timestamptz[], $9::uuid[], $10::int[])
         as u(id, job_id, owner, number, trigger, priority, plan, scheduled_for, retry_of, retry_number)`,
    [
      created.map((c) => c.id),
      created.map((c) => c.jobId),
      items.map((i) => i.job.owner),
      created.map((c) => c.number),
      items.map((i) => i.trigger),
      items.map((i) => i.job.priority),
      plans,
      items.map((i) => i.scheduledFor?.toISOString() ?? null),
      items.map((i) => i.retryOf ?? null),
      items.map((i) => i.retryNumber ?? 0),
    ],
  );
  if (stepRows.exec.length > 0) {
    await sql(
      `insert into execution_steps (id, execution_id, index, name, status)
       select gen_random_uuid(), u.e, u.i, u.n, 'PENDING' from unnest($1::uuid[], $2::int[], $3::text[]) as u(e, i, n)`,
      [stepRows.exec, stepRows.index, stepRows.name],
    );
  }
  await enqueueRuns(
    sql,
    created.map((c, i) => ({ executionId: c.id, jobId: c.jobId, priority: items[i]!.job.priority, runAt: items[i]!.runAt ?? null })),
  );
  return created;
}

/** Adds the run entries of executions (new, or re-queued as a next attempt). */
export async function enqueueRuns(sql: Sql, runs: Array<{ executionId: string; jobId: string; priority: number; runAt: Date | null }>): Promise<void> {
  if (runs.length === 0) return;
  await sql(
    `select graphile_worker.add_jobs(array_agg(row(
        $1::text, json_build_object('executionId', u.e), 'kiln:job:' || u.j, coalesce(u.ra, now()), $2::smallint,
        'execution:' || u.e, u.p, null
      )::graphile_worker.job_spec))
       from unnest($3::uuid[], $4::uuid[], $5::timestamptz[], $6::smallint[]) as u(e, j, ra, p)`,
    [
      TASKS.runExecution,
      RUN_MAX_ATTEMPTS,
      runs.map((r) => r.executionId),
      runs.map((r) => r.jobId),
      runs.map((r) => r.runAt?.toISOString() ?? null),
      runs.map((r) => queuePriority(r.priority)),
    ],
  );
}
