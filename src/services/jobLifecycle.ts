import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Job, TickOutcome } from '../entities/index.js';
import { NotFoundError } from '../errors.js';
import { activeExecutions } from '../executions/active.js';
import { cancelExecutions } from '../executions/cancel.js';
import { JobChange, notifyJobsChanged, notifySchedulesChanged } from '../executions/signals.js';
import { requestStoreDeletion } from '../executions/storeDeletions.js';
import { sqlOfEm } from '../util/sql.js';
import type { Deps } from './deps.js';
import { isUuid } from './paging.js';
import { upcomingRuns } from './schedules.js';

/** Bounds the PAUSED ticks a resume records when no scheduler recorded them meanwhile. */
const MAX_BACKFILL_TICKS = 10_000;

async function lockJob(em: EntityManager, owner: string, jobId: string): Promise<Job> {
  const job = isUuid(jobId) ? await em.findOne(Job, { id: jobId, owner }, { lockMode: LockMode.PESSIMISTIC_WRITE }) : null;
  if (job === null) throw new NotFoundError('job', jobId);
  return job;
}

/**
 * Stops new fires (the ledger records them PAUSED); queued and running executions go on. Pausing
 * a paused job changes nothing and tells nobody.
 */
export async function pauseJob(deps: Deps, owner: string, jobId: string): Promise<Job> {
  return deps.orm.em.fork().transactional(async (em) => {
    const job = await lockJob(em, owner, jobId);
    if (job.paused) return job;
    job.paused = true;
    await em.flush();
    await notifySchedulesChanged(sqlOfEm(em));
    await notifyJobsChanged(sqlOfEm(em), owner, [{ id: job.id, change: JobChange.PAUSED, paused: true }]);
    return job;
  });
}

/**
 * `first` and the fire times after it up to `now`, at most MAX_BACKFILL_TICKS. Asked for in
 * batches that double, so that the cron search (on the API's loop) costs about twice the fire
 * times missed, not MAX_BACKFILL_TICKS of them: 10,000 fire times of a yearly job are 3.6 million
 * of cron-parser's day steps (docs/design.md#off-the-loop).
 */
function missedFireTimes(job: Job, first: Date, now: Date): Date[] {
  const missed = [first];
  for (let batch = 1; missed.length < MAX_BACKFILL_TICKS; batch *= 2) {
    const next = upcomingRuns(job, missed[missed.length - 1]!, Math.min(batch, MAX_BACKFILL_TICKS - missed.length));
    for (const t of next) {
      if (t > now) return missed;
      missed.push(t);
    }
    if (next.length === 0) return missed;
  }
  return missed;
}

/**
 * Fires again from the next fire time after now. Fire times the scheduler has not yet recorded
 * (none was running) are recorded PAUSED here, so the ledger has no hole.
 */
export async function resumeJob(deps: Deps, owner: string, jobId: string): Promise<Job> {
  return deps.orm.em.fork().transactional(async (em) => {
    const job = await lockJob(em, owner, jobId);
    if (!job.paused) return job;
    const now = new Date();
    if (job.nextRunAt !== null && job.nextRunAt <= now) {
      const missed = job.runOnce ? [job.nextRunAt] : missedFireTimes(job, job.nextRunAt, now);
      await sqlOfEm(em)(
        `insert into ticks (job_id, fire_time, outcome) select $1, t, $3 from unnest($2::timestamptz[]) as t on conflict do nothing`,
        [job.id, missed.map((t) => t.toISOString()), TickOutcome.PAUSED],
      );
      job.nextRunAt = job.runOnce ? null : (upcomingRuns(job, now, 1)[0] ?? null);
    }
    job.paused = false;
    await em.flush();
    await notifySchedulesChanged(sqlOfEm(em));
    await notifyJobsChanged(sqlOfEm(em), owner, [{ id: job.id, change: JobChange.RESUMED, paused: false }]);
    return job;
  });
}

/**
 * Deletes the job, its history and its ledger. Its active executions are cancelled first: queued
 * ones leave the queue; a running one's worker finds its claim gone and destroys the container.
 * Their archived logs and artifacts leave the store after the commit (requestStoreDeletion).
 */
export async function deleteJob(deps: Deps, owner: string, jobId: string): Promise<boolean> {
  return deps.orm.em.fork().transactional(async (em) => {
    const job = await lockJob(em, owner, jobId);
    const sql = sqlOfEm(em);
    const active = (await activeExecutions(sql, [job.id])).get(job.id)!;
    await cancelExecutions(sql, [...active.running, ...active.queued], 'job deleted');
    // With the delete or not at all: the store objects go after the commit (docs/design.md#quotas).
    await requestStoreDeletion(sql, job.id);
    em.remove(job);
    await em.flush();
    await notifySchedulesChanged(sql);
    await notifyJobsChanged(sql, owner, [{ id: job.id, change: JobChange.DELETED, paused: job.paused }]);
    return true;
  });
}
