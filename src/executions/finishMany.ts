import type { FinalStatus } from '../entities/enums.js';
import { endingsInsert } from '../notify/queue.js';
import type { Fence } from './fence.js';
import type { Sql } from '../util/sql.js';
import type { StepChange } from './steps.js';

/** How a run ended, as recorded. */
export interface Outcome {
  status: FinalStatus;
  exitCode: number | null;
  error: string | null;
}

/** A log line the finish stores with the outcome (a LogWriter's tail: see LogWriter.takeTail). */
export interface FinalLine {
  seq: number;
  stream: string;
  step: number | null;
  text: string;
  at: Date;
}

/** One run's end: its claim, its outcome, and what of its steps and log was not written yet. */
export interface Finish {
  fence: Fence;
  outcome: Outcome;
  steps: readonly StepChange[];
  lines: readonly FinalLine[];
}

/** An execution whose outcome was recorded (its claim still held). */
export interface FinishedRow {
  id: string;
  job_id: string;
  retry_of: string | null;
  retry_number: number;
}

/**
 * Ends RUNNING executions under their claims, in one statement (docs/design.md#dispatch): the
 * rows are locked in id order (so that concurrent multi-row statements never deadlock on them),
 * then each gets its outcome, its archive due and its last_seq, its last log lines go in, and its
 * steps get their last changes and final statuses (RUNNING -> FAILED, PENDING -> SKIPPED; a step's
 * row is updated once), and with `$20` the notifications of the endings are queued
 * (docs/design.md#notifications; a job without `notify` costs a probe of `jobs`). An execution
 * whose claim was lost is left alone and not in `done`. Common table expressions, to follow `with`.
 */
export const FINISH_CTES = `f as (
  select * from unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::int[], $6::text[], $7::int[])
    as f(id, attempt, worker, status, exit_code, error, last_seq)
), locked as (
  select e.id from executions e join f on e.id = f.id and e.attempt = f.attempt and e.worker_id = f.worker
   where e.status = 'RUNNING' order by e.id for no key update of e
), done as (
  update executions e set status = f.status, exit_code = f.exit_code, error = f.error, finished_at = now(),
         lease_expires_at = null, archive_due_at = now(), last_seq = greatest(e.last_seq, coalesce(f.last_seq, 0))
    from f where e.id = f.id and e.id in (select id from locked)
  returning e.id, e.job_id, e.retry_of, e.retry_number, e.status, e.exit_code, e.error, e.started_at, e.finished_at, e.created_at
), notified as (
  ${endingsInsert('(select * from done where $20::boolean)')}
), lines as (
  insert into log_chunks (execution_id, seq, stream, step, text, at)
  select u.e, u.s, u.st, u.sp, u.tx, u.a
    from unnest($8::uuid[], $9::int[], $10::text[], $11::int[], $12::text[], $13::timestamptz[]) as u(e, s, st, sp, tx, a)
   where u.e in (select id from done)
), changes as (
  select * from unnest($14::uuid[], $15::int[], $16::text[], $17::int[], $18::timestamptz[], $19::timestamptz[])
    as c(e, idx, status, exit_code, started_at, finished_at)
), steps as (
  update execution_steps s
     set status = case coalesce(c.status, s.status) when 'RUNNING' then 'FAILED' when 'PENDING' then 'SKIPPED' else coalesce(c.status, s.status) end,
         exit_code = case when c.idx is null then s.exit_code else c.exit_code end,
         started_at = coalesce(c.started_at, s.started_at),
         finished_at = coalesce(c.finished_at, s.finished_at, now())
    from execution_steps s2 left join changes c on c.e = s2.execution_id and c.idx = s2.index
   where s.id = s2.id and s2.execution_id in (select id from done) and (c.idx is not null or s2.status in ('PENDING', 'RUNNING'))
)`;

const FINISH_MANY = `with ${FINISH_CTES}
select id, job_id, retry_of, retry_number from done`;

/** The values of FINISH_CTES' parameters $1 to $20. */
export function finishParams(finishes: readonly Finish[], notify: boolean): unknown[] {
  const lines = finishes.flatMap((f) => f.lines.map((l) => ({ e: f.fence.id, l })));
  const steps = finishes.flatMap((f) => f.steps.map((c) => ({ e: f.fence.id, c })));
  return [
    finishes.map((f) => f.fence.id),
    finishes.map((f) => f.fence.attempt),
    finishes.map((f) => f.fence.workerId),
    finishes.map((f) => f.outcome.status),
    finishes.map((f) => f.outcome.exitCode),
    finishes.map((f) => f.outcome.error),
    finishes.map((f) => f.lines.at(-1)?.seq ?? null),
    lines.map((x) => x.e),
    lines.map((x) => x.l.seq),
    lines.map((x) => x.l.stream),
    lines.map((x) => x.l.step),
    lines.map((x) => x.l.text),
    lines.map((x) => x.l.at.toISOString()),
    steps.map((x) => x.e),
    steps.map((x) => x.c.index),
    steps.map((x) => x.c.status),
    steps.map((x) => x.c.exitCode),
    steps.map((x) => x.c.startedAt?.toISOString() ?? null),
    steps.map((x) => x.c.finishedAt?.toISOString() ?? null),
    notify,
  ];
}

/**
 * Records the finishes in the caller's transaction; returns the rows of those whose claim held.
 * `notify: false` leaves the notifications to the caller (queueEndings), who knows something the
 * statement does not, such as whether a retry follows.
 */
export async function finishMany(sql: Sql, finishes: readonly Finish[], opts: { notify: boolean } = { notify: true }): Promise<FinishedRow[]> {
  if (finishes.length === 0) return [];
  return sql<FinishedRow>(FINISH_MANY, finishParams(finishes, opts.notify));
}
