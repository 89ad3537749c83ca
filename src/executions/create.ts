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
 * Inserts executions (numbered per job), their PENDING steps and their queue entries, in bulk:
 * one statement per CHUNK items. Returns them in input order.
 */
export async function insertExecutions(sql: Sql, defaultImage: string, items: NewExecution[]): Promise<CreatedExecution[]> {
  const created: CreatedExecution[] = [];
  for (let from = 0; from < items.length; from += CHUNK) {
    const rows = executionRows(defaultImage, items.slice(from, from + CHUNK));
    const numbered = await sql<{ id: string; number: number }>(
      `with ${newRowsCte(1)},
       wanted_rows as (select * from new_rows),
       job_counts as (
         update jobs j set execution_count = j.execution_count + v.n
           from (select job_id, count(*)::int as n from new_rows group by job_id) v where j.id = v.job_id
         returning j.id, j.execution_count, v.n
       ), ${insertCtes(1)}
       select c.id, c.number, (select pg_notify($${NEW_ROW_PARAMS + 1}, '')) as woke from created c`,
      [...rows.params, QUEUED_CHANNEL],
    );
    const numbers = new Map(numbered.map((r) => [r.id, r.number]));
    for (const c of rows.created) {
      const number = numbers.get(c.id);
      if (number === undefined) throw new Error(`job ${c.jobId} vanished while queueing an execution`);
      created.push({ ...c, number });
    }
  }
  return created;
}

/**
 * Rows built and sent per statement at most. Building and serialising them is synchronous work on
 * the event loop the API shares; between chunks it is free (5,000 rows at once held it 145 ms).
 */
export const CHUNK = 500;

/** Parameters newRowsCte reads, from its first position on. */
export const NEW_ROW_PARAMS = 13;

/** New executions as newRowsCte's parameters (ids made here), not yet numbered. */
export interface ExecutionRows {
  created: Array<{ id: string; jobId: string }>;
  /** NEW_ROW_PARAMS arrays: the execution columns, then the steps' (execution, index, name). */
  params: unknown[];
}

/** Builds the rows of new executions: ids, compiled plans and PENDING steps. */
export function executionRows(defaultImage: string, items: NewExecution[]): ExecutionRows {
  const created: Array<{ id: string; jobId: string }> = [];
  const plans: string[] = [];
  const steps: { exec: string[]; index: number[]; name: string[] } = { exec: [], index: [], name: [] };
  for (const it of items) {
    const id = randomUUID();
    const plan = toExecutionPlan(it.job.definition, { image: defaultImage });
    if (it.ref !== undefined && plan.repository !== null) plan.repository.ref = it.ref;
    plans.push(JSON.stringify(plan));
    for (const step of plan.steps) {
      steps.exec.push(id);
      steps.index.push(step.index);
      steps.name.push(step.name);
    }
    created.push({ id, jobId: it.job.id });
  }
  const params = [
    created.map((c) => c.id),
    created.map((c) => c.jobId),
    items.map((i) => i.job.owner),
    items.map((i) => i.trigger),
    items.map((i) => i.job.priority),
    plans,
    items.map((i) => i.scheduledFor?.toISOString() ?? null),
    items.map((i) => i.retryOf ?? null),
    items.map((i) => i.retryNumber ?? 0),
    items.map((i) => i.runAt?.toISOString() ?? null),
    steps.exec,
    steps.index,
    steps.name,
  ];
  return { created, params };
}

/** `new_rows`: the executionRows given as parameters from `$first` on, in input order (`ord`). */
export function newRowsCte(first: number): string {
  const $ = (i: number) => `$${first + i}`;
  return `new_rows as (
  select * from unnest(${$(0)}::uuid[], ${$(1)}::uuid[], ${$(2)}::text[], ${$(3)}::text[], ${$(4)}::smallint[], ${$(5)}::jsonb[],
                       ${$(6)}::timestamptz[], ${$(7)}::uuid[], ${$(8)}::int[], ${$(9)}::timestamptz[]) with ordinality
    as u(id, job_id, owner, trigger, priority, plan, scheduled_for, retry_of, retry_number, run_at, ord)
)`;
}

/**
 * `created` and `new_steps`: inserts the executions of `wanted_rows` (a subset of new_rows the
 * caller defines) and their steps (parameters `$first+10` to `$first+12`), numbered after
 * `job_counts(id, execution_count, n)`: each job's count once its `n` new executions are counted
 * (an update of the job rows by the caller, atomic under their locks: numbers never repeat).
 */
export function insertCtes(first: number): string {
  const $ = (i: number) => `$${first + i}`;
  return `created as (
  insert into executions (id, job_id, owner, number, status, trigger, attempt, priority, plan, scheduled_for,
                          queued_at, last_seq, artifacts, retry_of, retry_number, created_at, run_at)
  select w.id, w.job_id, w.owner, c.execution_count - c.n + row_number() over (partition by w.job_id order by w.ord),
         'QUEUED', w.trigger, 1, w.priority, w.plan, w.scheduled_for,
         greatest(now(), coalesce(w.scheduled_for, now())), 0, '[]', w.retry_of, w.retry_number, now(), coalesce(w.run_at, now())
    from wanted_rows w join job_counts c on c.id = w.job_id
  returning id, job_id, number
), new_steps as (
  insert into execution_steps (id, execution_id, index, name, status)
  select gen_random_uuid(), u.e, u.i, u.n, 'PENDING' from unnest(${$(10)}::uuid[], ${$(11)}::int[], ${$(12)}::text[]) as u(e, i, n)
   where u.e in (select id from wanted_rows)
)`;
}
