import type pg from 'pg';
import type { Log } from '../util/log.js';
import { ExecutionTrigger, TickOutcome } from '../entities/enums.js';
import { activeExecutions } from '../executions/active.js';
import { cancelExecutions } from '../executions/cancel.js';
import { insertExecutions, type NewExecution } from '../executions/create.js';
import { inTransaction } from '../util/sql.js';
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

/**
 * One pass of the scheduler over up to `batchSize` due jobs, in one transaction: every due fire
 * time gets its tick (the ledger), FIRED ticks get their executions and queue entries, MISSED and
 * SKIPPED_OVERLAP ticks of jobs with a `missed` rule their notifications, replaced runs are
 * cancelled, and each job's cursor moves past what was recorded.
 *
 * Idempotent whatever crashes: the job rows are locked (SKIP LOCKED, so two leaders never take
 * the same job), a tick is inserted before its execution and an execution is created only for
 * ticks this pass inserted, and the cursor moves in the same commit.
 * Returns how many jobs it processed (batchSize means: call again).
 */
export async function fireDue(pool: pg.Pool, opts: FireOptions, now: number = Date.now()): Promise<number> {
  const fired: Array<{ executionId: string; jobId: string; scheduledFor: string }> = [];
  const replaced: string[] = [];
  const processed = await inTransaction(pool, async (sql) => {
    const jobs = await sql<DueJob>(
      `select id, owner, priority, definition, schedule, timezone, run_once, paused, next_run_at, schedule_anchor
         from jobs where next_run_at <= $1 order by next_run_at limit $2 for update skip locked`,
      [new Date(now), opts.batchSize],
    );
    if (jobs.length === 0) return 0;
    const active = await activeExecutions(sql, jobs.map((j) => j.id));
    const ticks: { job: string[]; time: string[]; outcome: string[]; catchUp: boolean[] } = { job: [], time: [], outcome: [], catchUp: [] };
    const runs = new Map<string, { job: DueJob; fireTime: Date; catchUp: boolean }>();
    const cancel: string[] = [];
    const cursors: { id: string[]; next: (string | null)[] } = { id: [], next: [] };
    const notifiesMissed = new Set<string>();
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
      for (const t of plan.ticks) {
        ticks.job.push(job.id);
        ticks.time.push(t.fireTime.toISOString());
        ticks.outcome.push(t.outcome);
        ticks.catchUp.push(t.catchUp);
        if (t.run) runs.set(`${job.id}|${t.fireTime.toISOString()}`, { job, fireTime: t.fireTime, catchUp: t.catchUp });
      }
      if (wantsMissed(job.definition)) notifiesMissed.add(job.id);
      cancel.push(...plan.cancel);
      cursors.id.push(job.id);
      cursors.next.push(plan.next?.toISOString() ?? null);
    }
    const inserted = await sql<{ job_id: string; fire_time: Date; outcome: TickOutcome }>(
      `insert into ticks (job_id, fire_time, outcome, catch_up)
       select * from unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::boolean[])
       on conflict do nothing returning job_id, fire_time, outcome`,
      [ticks.job, ticks.time, ticks.outcome, ticks.catchUp],
    );
    // Only ticks this pass inserted: a pass that ran again after a crash notifies nothing twice.
    const missed = inserted.filter((t) => (t.outcome === TickOutcome.MISSED || t.outcome === TickOutcome.SKIPPED_OVERLAP) && notifiesMissed.has(t.job_id));
    await queueMissed(sql, missed.map((t) => ({ jobId: t.job_id, fireAt: new Date(t.fire_time), outcome: t.outcome })));
    const toRun: NewExecution[] = [];
    const runKeys: string[] = [];
    for (const t of inserted) {
      const key = `${t.job_id}|${new Date(t.fire_time).toISOString()}`;
      const run = runs.get(key);
      if (!run) continue;
      runKeys.push(key);
      toRun.push({ job: run.job, trigger: ExecutionTrigger.SCHEDULE, scheduledFor: run.fireTime });
    }
    await cancelExecutions(sql, cancel, 'replaced by a newer run (concurrency: replace)');
    const created = await insertExecutions(sql, opts.defaultImage, toRun);
    replaced.push(...cancel);
    for (const [i, c] of created.entries()) fired.push({ executionId: c.id, jobId: c.jobId, scheduledFor: runKeys[i]!.split('|')[1]! });
    if (created.length > 0) {
      await sql(
        `update ticks t set execution_id = u.e from unnest($1::uuid[], $2::timestamptz[], $3::uuid[]) as u(j, f, e)
          where t.job_id = u.j and t.fire_time = u.f`,
        [created.map((c) => c.jobId), runKeys.map((k) => k.split('|')[1]), created.map((c) => c.id)],
      );
    }
    await sql(
      `update jobs j set next_run_at = u.n from unnest($1::uuid[], $2::timestamptz[]) as u(id, n) where j.id = u.id`,
      [cursors.id, cursors.next],
    );
    return jobs.length;
  });
  // Logged once committed: a pass that rolled back fired nothing.
  for (const f of fired) opts.log?.(`fired execution ${f.executionId} for ${f.scheduledFor}`, { level: 'debug', ...f });
  for (const id of replaced) opts.log?.(`execution ${id} replaced by a newer run (concurrency: replace)`, { executionId: id });
  return processed;
}

