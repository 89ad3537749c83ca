import { randomUUID } from 'node:crypto';
import type { ExecutionTrigger } from '../entities/enums.js';
import { toExecutionPlan } from '../jobfile/compile.js';
import type { JobSpec } from '../jobfile/types.js';
import { QUEUED_CHANNEL } from './queue.js';
import type { Sql } from '../util/sql.js';

/**
 * Creating executions. The executions table is the queue (docs/design.md#dispatch): a QUEUED
 * row whose `run_at` has come is claimable, so creating the rows is enqueueing them, in the
 * caller's transaction. Workers are woken by one NOTIFY per call, delivered at commit.
 */

export interface NewExecution {
  job: { id: string; owner: string; priority: number; definition: JobSpec };
  trigger: ExecutionTrigger;
  scheduledFor?: Date | null;
  retryOf?: string | null;
  retryNumber?: number;
  /** Not before this time (retry backoff); default now. */
  runAt?: Date | null;
  /** Checks out this ref instead of the job's `repository.ref` (a webhook's pushed commit). */
  ref?: string;
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
  for (let from = 0; from < items.length; from += CHUNK) {
    created.push(...(await insertChunk(sql, defaultImage, items.slice(from, from + CHUNK), nextNumber)));
  }
  return created;
}

/**
 * Rows built and sent per statement at most. Building and serialising them is synchronous work on
 * the event loop the API shares; between chunks it is free (5,000 rows at once held it 145 ms).
 */
const CHUNK = 500;

/** Inserts one chunk of executions and their steps, numbering them from `nextNumber` (advanced). */
async function insertChunk(sql: Sql, defaultImage: string, items: NewExecution[], nextNumber: Map<string, number>): Promise<CreatedExecution[]> {
  const created: CreatedExecution[] = [];
  const plans: string[] = [];
  const stepRows: { exec: string[]; index: number[]; name: string[] } = { exec: [], index: [], name: [] };
  for (const it of items) {
    const number = nextNumber.get(it.job.id);
    if (number === undefined) throw new Error(`job ${it.job.id} vanished while queueing an execution`);
    nextNumber.set(it.job.id, number + 1);
    const id = randomUUID();
    const plan = toExecutionPlan(it.job.definition, { image: defaultImage });
    if (it.ref !== undefined && plan.repository !== null) plan.repository.ref = it.ref;
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
                             queued_at, last_seq, artifacts, retry_of, retry_number, created_at, run_at)
     select u.id, u.job_id, u.owner, u.number, 'QUEUED', u.trigger, 1, u.priority, u.plan, u.scheduled_for,
            now(), 0, '[]', u.retry_of, u.retry_number, now(), coalesce(u.run_at, now())
       from unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::smallint[], $7::jsonb[],
                   $8::timestamptz[], $9::uuid[], $10::int[], $11::timestamptz[])
         as u(id, job_id, owner, number, trigger, priority, plan, scheduled_for, retry_of, retry_number, run_at)`,
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
      items.map((i) => i.runAt?.toISOString() ?? null),
    ],
  );
  // The steps and the workers' wake-up in one statement (one NOTIFY per transaction: Postgres
  // folds a repeated channel and payload into one).
  await sql(
    `with steps as (
       insert into execution_steps (id, execution_id, index, name, status)
       select gen_random_uuid(), u.e, u.i, u.n, 'PENDING' from unnest($1::uuid[], $2::int[], $3::text[]) as u(e, i, n)
     )
     select pg_notify($4, '')`,
    [stepRows.exec, stepRows.index, stepRows.name, QUEUED_CHANNEL],
  );
  return created;
}
