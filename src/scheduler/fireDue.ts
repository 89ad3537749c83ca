import type pg from 'pg';
import type { Log } from '../util/log.js';
import { ExecutionTrigger, TickOutcome } from '../entities/enums.js';
import { activeExecutions } from '../executions/active.js';
import { cancelExecutions } from '../executions/cancel.js';
import { CHUNK, executionRows, insertCtes, NEW_ROW_PARAMS, newRowsCte, type NewExecution } from '../executions/create.js';
import { QUEUED_CHANNEL } from '../executions/queue.js';
import { inTransaction } from '../util/sql.js';
import { sleepUntil } from '../util/timeout.js';
import { parseSchedule, type Schedule } from '../schedule/schedule.js';
import { planFires, type PlanOptions } from '../schedule/firePlan.js';
import type { JobSpec } from '../jobfile/types.js';
import { queueMissed, wantsMissed } from '../notify/missed.js';

export interface FireOptions extends PlanOptions {
  defaultImage: string;
  /** Jobs per transaction. */
  batchSize: number;
  /** Told about each execution fired and each run replaced, after the commit (debug level for fires). */
  log?: Log;
}

interface DueJob {
  id: string;
  owner: string;
  priority: number;
  definition: JobSpec;
  schedule: string;
  timezone: string;
  run_once: boolean;
  paused: boolean;
  next_run_at: Date;
  schedule_anchor: Date;
}

const parsed = new Map<string, Schedule | null>();
function scheduleOf(text: string): Schedule | null {
  if (!parsed.has(text)) {
    const r = parseSchedule(text);
    parsed.set(text, r.ok ? r.value : null);
    if (parsed.size > 50_000) parsed.clear();
  }
  return parsed.get(text)!;
}

/** What one pass did: jobs whose due fire times it recorded, and whether more may be due now. */
export interface FirePass {
  jobs: number;
  more: boolean;
  /** A pass prepared ahead (fireAhead): how long it took to write, before it waited for its instant. */
  writeMs?: number;
}

/** The pass's writes after planning, in one statement (see fireDue): parameters 1-7, then new_rows'. */
const RECORD_FIRES = `with ${newRowsCte(8)},
ins_ticks as (
  insert into ticks (job_id, fire_time, outcome, catch_up, execution_id, recorded_at)
  select j, t, o, c, e, greatest(now(), t) from unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::boolean[], $5::uuid[]) as u(j, t, o, c, e)
  on conflict do nothing
  returning job_id, fire_time, outcome, execution_id
), wanted_rows as (
  select * from new_rows where id in (select execution_id from ins_ticks)
), job_counts as (
  update jobs j set next_run_at = c.next, execution_count = j.execution_count + coalesce(v.n, 0)
    from unnest($6::uuid[], $7::timestamptz[]) as c(id, next)
    left join (select job_id, count(*)::int as n from wanted_rows group by job_id) v on v.job_id = c.id
   where j.id = c.id
  returning j.id, j.execution_count, coalesce(v.n, 0) as n
), ${insertCtes(8)}
select (select coalesce(json_agg(json_build_object('jobId', job_id, 'fireTime', fire_time, 'outcome', outcome)), '[]') from ins_ticks) as ticks,
       (select coalesce(json_agg(json_build_object('id', c.id, 'jobId', c.job_id, 'scheduledFor', n.scheduled_for)), '[]')
          from created c join new_rows n on n.id = c.id) as created,
       (select pg_notify($${8 + NEW_ROW_PARAMS}, '') where exists (select 1 from created)) as woke`;

/**
 * One pass of the scheduler over up to `batchSize` due jobs, in one transaction: every due fire
 * time gets its tick (the ledger), FIRED ticks get their executions and queue entries, MISSED and
 * SKIPPED_OVERLAP ticks of jobs with a `missed` rule their notifications, replaced runs are
 * cancelled, and each job's cursor moves past what was recorded.
 *
 * Idempotent whatever crashes: the job rows are locked (SKIP LOCKED, so two leaders never take
 * the same job), a tick is inserted before its execution and an execution is created only for
 * ticks this pass inserted, and the cursor moves in the same commit.
 *
 * After planning, one statement records it all (RECORD_FIRES: ticks, executions, steps, cursors,
 * the workers' wake-up): a pass is five round trips (begin and commit included) whatever its
 * size, so the first fires of an instant reach the workers sooner (docs/design.md#scheduling).
 * A pass takes jobs while their runs fit in one statement (CHUNK, at least one job); the rest
 * stay due for the next pass (`more`).
 */
export function fireDue(pool: pg.Pool, opts: FireOptions, now: number = Date.now()): Promise<FirePass> {
  return firePass(pool, opts, now, false);
}

/**
 * A pass prepared ahead of the instant `at` (a few tens of ms before it): the fires due by `at`
 * of jobs with nothing queued or running are planned and written as if at `at`, and the
 * transaction commits once `at` has come, so the instant's runs become visible (ticks, QUEUED
 * executions, the workers' wake-up) at it instead of a pass's length after it. Nothing shows
 * before its time: uncommitted until `at`, and `run_at`, `queued_at` and the tick's
 * `recorded_at` are never earlier than the fire time. The decisions are the ones a pass at `at`
 * would make: jobs with an active run (whose `concurrency` decision could change by `at`) are not
 * taken, and every other change to a taken job (trigger, pause, edit, delete) waits on its row
 * lock until the commit, as it would behind any pass (docs/design.md#scheduling).
 */
export function fireAhead(pool: pg.Pool, opts: FireOptions, at: number): Promise<FirePass> {
  return firePass(pool, opts, at, true);
}

/**
 * The due jobs a pass takes, locked. `for no key update`: it serialises with other passes and
 * with triggers (`for update`), but not with a foreign key's check of a run inserted for the job.
 */
const DUE_JOBS = (ahead: boolean) => `select id, owner, priority, definition, schedule, timezone, run_once, paused, next_run_at, schedule_anchor
  from jobs where next_run_at <= $1
  ${ahead ? `and not exists (select 1 from executions e where e.job_id = jobs.id and e.status in ('QUEUED', 'RUNNING'))` : ''}
  order by next_run_at limit $2 for no key update skip locked`;

async function firePass(pool: pg.Pool, opts: FireOptions, now: number, ahead: boolean): Promise<FirePass> {
  const fired: Array<{ executionId: string; jobId: string; scheduledFor: string }> = [];
  const replaced: string[] = [];
  const began = Date.now();
  let writeMs: number | undefined;
  const pass = await inTransaction(pool, async (sql): Promise<FirePass> => {
    const jobs = await sql<DueJob>(DUE_JOBS(ahead), [new Date(now), opts.batchSize]);
    if (jobs.length === 0) return { jobs: 0, more: false };
    const active = await activeExecutions(sql, jobs.map((j) => j.id));
    const planned = planPass(jobs, active, now, opts, ahead);
    const { ticks, toRun, cursors } = planned;
    const rows = executionRows(opts.defaultImage, toRun.map((r) => r.run));
    const executionOf = new Map(toRun.map((r, i) => [r.tick, rows.created[i]!.id]));
    await cancelExecutions(sql, planned.cancel, 'replaced by a newer run (concurrency: replace)');
    const [written] = await sql<{
      ticks: Array<{ jobId: string; fireTime: string; outcome: TickOutcome }>;
      created: Array<{ id: string; jobId: string; scheduledFor: string }>;
    }>(RECORD_FIRES, [
      ticks.job, ticks.time, ticks.outcome, ticks.catchUp, ticks.time.map((_, i) => executionOf.get(i) ?? null),
      cursors.id, cursors.next,
      ...rows.params, QUEUED_CHANNEL,
    ]);
    // Only ticks this pass inserted: a pass that ran again after a crash notifies nothing twice.
    const missed = written!.ticks.filter(
      (t) => (t.outcome === TickOutcome.MISSED || t.outcome === TickOutcome.SKIPPED_OVERLAP) && planned.notifiesMissed.has(t.jobId),
    );
    await queueMissed(sql, missed.map((t) => ({ jobId: t.jobId, fireAt: new Date(t.fireTime), outcome: t.outcome })));
    if (ahead) {
      writeMs = Date.now() - began;
      await sleepUntil(now);
    }
    replaced.push(...planned.cancel);
    for (const c of written!.created) fired.push({ executionId: c.id, jobId: c.jobId, scheduledFor: new Date(c.scheduledFor).toISOString() });
    return { jobs: planned.jobs, more: planned.jobs < jobs.length || jobs.length === opts.batchSize };
  });
  // Logged once committed: a pass that rolled back fired nothing.
  for (const f of fired) opts.log?.(`fired execution ${f.executionId} for ${f.scheduledFor}`, { level: 'debug', ...f });
  for (const id of replaced) opts.log?.(`execution ${id} replaced by a newer run (concurrency: replace)`, { executionId: id });
  return writeMs === undefined ? pass : { ...pass, writeMs };
}

interface PlannedPass {
  /** How many of the locked jobs (a prefix) this pass records. */
  jobs: number;
  ticks: { job: string[]; time: string[]; outcome: string[]; catchUp: boolean[] };
  /** The runs to create, each with the index of its tick. */
  toRun: Array<{ tick: number; run: NewExecution }>;
  cancel: string[];
  cursors: { id: string[]; next: (string | null)[] };
  notifiesMissed: Set<string>;
}

/** Plans the due fires of `jobs` (planFires), as many jobs as fit one statement's runs. */
function planPass(jobs: DueJob[], active: Map<string, { running: string[]; queued: string[] }>, now: number, opts: PlanOptions, ahead: boolean): PlannedPass {
  const out: PlannedPass = {
    jobs: 0, ticks: { job: [], time: [], outcome: [], catchUp: [] }, toRun: [], cancel: [], cursors: { id: [], next: [] }, notifiesMissed: new Set(),
  };
  for (const job of jobs) {
    const schedule = scheduleOf(job.schedule);
    const plan = schedule
      ? planFires(
          {
            schedule, timezone: job.timezone, anchor: job.schedule_anchor, runOnce: job.run_once, paused: job.paused,
            cursor: job.next_run_at, concurrency: job.definition.concurrency, misfire: job.definition.misfire,
          },
          now,
          active.get(job.id)!,
          opts,
        )
      : { ticks: [], next: null, cancel: [] }; // validated on submit; a schedule that no longer parses stops
    const runs = plan.ticks.filter((t) => t.run).length;
    if (out.jobs > 0 && out.toRun.length + runs > CHUNK) break;
    for (const t of plan.ticks) {
      if (t.run) {
        const run: NewExecution = { job, trigger: ExecutionTrigger.SCHEDULE, scheduledFor: t.fireTime, ...(ahead ? { runAt: t.fireTime } : {}) };
        out.toRun.push({ tick: out.ticks.job.length, run });
      }
      out.ticks.job.push(job.id);
      out.ticks.time.push(t.fireTime.toISOString());
      out.ticks.outcome.push(t.outcome);
      out.ticks.catchUp.push(t.catchUp);
    }
    if (wantsMissed(job.definition)) out.notifiesMissed.add(job.id);
    out.cancel.push(...plan.cancel);
    out.cursors.id.push(job.id);
    out.cursors.next.push(plan.next?.toISOString() ?? null);
    out.jobs++;
  }
  return out;
}
