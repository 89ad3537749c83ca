import { Execution, ExecutionTrigger, Job } from '../entities/index.js';
import { ValidationError } from '../errors.js';
import type { FirstRun } from '../jobfile/offLoopTasks.js';
import type { JobFilePolicy } from '../jobfile/compile.js';
import type { JobFileResult, JobSpec } from '../jobfile/types.js';
import { upcomingRuns } from './schedules.js';
import type { Deps } from './deps.js';
import { insertExecutions } from '../executions/create.js';
import { JobChange, notifyJobsChanged, notifySchedulesChanged } from '../executions/signals.js';
import { sqlOfEm } from '../util/sql.js';

/**
 * Checks a job file without storing anything (`validateJobSpec`), in the off-loop pool like a
 * submit: within the per-file budget, taking turns with other users (see OffLoop).
 */
export function validateJobFile(deps: Pick<Deps, 'offLoop'>, owner: string, source: string, policy?: JobFilePolicy): Promise<JobFileResult> {
  return deps.offLoop.compile(owner, source, policy);
}

/**
 * What this server lets a job's `repository.url` reach (the workers' settings), which private
 * notification targets it allows (KILN_WEBHOOK_ALLOW), and how many secrets a job may list,
 * checked at submit.
 */
export function repositoryPolicyOf(config: Deps['config']): JobFilePolicy {
  return {
    protocols: config.runner.gitProtocols,
    localRoot: config.runner.gitLocalRoot,
    maxSecrets: config.maxSecretsPerJob,
    webhookAllow: config.notify.webhookAllow,
    smtp: config.notify.smtpUrl !== null,
  };
}

/**
 * Stores every job of a file for `owner`, all or nothing. A job whose name exists is updated;
 * a one-off job (no schedule) is queued at once. Invalid files store nothing and raise a
 * ValidationError carrying every diagnostic. Returns the jobs in the file's order.
 */
/** The execution a submit queued for each one-off job it returned (see submitJobs). */
const queuedBySubmit = new WeakMap<Job, Execution>();

/** The execution that the submit which returned `job` queued for it, as queued; undefined for other jobs. */
export function queuedBy(job: Job): Execution | undefined {
  return queuedBySubmit.get(job);
}

export async function submitJobs(deps: Deps, owner: string, source: string): Promise<Job[]> {
  // The first fire times are computed with the file, off the loop: a thousand rare schedules
  // cost thousands of cron steps each (see firstRunAt).
  const result = await deps.offLoop.compile(owner, source, repositoryPolicyOf(deps.config), new Date());
  if (!result.ok) {
    const n = result.diagnostics.length;
    throw new ValidationError(`the job file has ${n} error${n === 1 ? '' : 's'}: ${result.diagnostics[0]!.message}`, result.diagnostics);
  }
  const em = deps.orm.em.fork();
  const firstRuns = result.firstRuns ?? [];
  return em.transactional(async (tem) => {
    const now = new Date();
    const sql = sqlOfEm(tem);
    // Serialise concurrent submits of the same names: the second waits, then updates. One
    // statement takes every lock of the file in the order of the lock keys themselves, so that
    // two files naming the same jobs in any orders cannot deadlock. Not in the order of the
    // names: two names whose hashtext collide share a lock, and {a, b} and {b, c} with
    // hashtext(a) = hashtext(c) would lock in opposite orders. The key is (hashtext(owner),
    // hashtext(name)), the same for every file of the owner; `distinct` takes a shared key once.
    // The outer `order by` decides the order of the calls: Postgres evaluates a volatile
    // function in the select list after the sort, unlike inside an aggregate over a subquery.
    const names = result.jobs.map((spec) => spec.name);
    await sql(
      `select pg_advisory_xact_lock(hashtext($1), k)
         from (select distinct hashtext(n) as k from unnest($2::text[]) as n) as keys
        order by k`,
      [owner, names],
    );
    // A full file (MAX_JOBS_PER_FILE) is a handful of statements, not a few per job.
    const existing = new Map((await tem.find(Job, { owner, name: { $in: names } })).map((job) => [job.name, job]));
    const jobs = result.jobs.map((spec, i) => {
      let job = existing.get(spec.name);
      // A new or changed schedule starts its ledger at its first fire time after now; an
      // unchanged one keeps its cursor, so resubmitting a file never drops a due tick.
      let rearm = true;
      if (job === undefined) {
        job = tem.create(Job, { owner, name: spec.name, ...fieldsOf(spec), scheduleAnchor: now });
      } else {
        rearm = job.schedule !== spec.schedule || job.timezone !== spec.timezone || job.runOnce !== spec.runOnce;
        tem.assign(job, fieldsOf(spec));
        if (rearm) job.scheduleAnchor = now;
      }
      if (rearm) job.nextRunAt = firstRunAt(job, firstRuns[i] ?? null, now);
      return job;
    });
    await tem.flush();
    const oneOffs = jobs.filter((job) => job.schedule === null);
    const created = await insertExecutions(sql, deps.config.defaultImage, oneOffs.map((job) => ({ job, trigger: ExecutionTrigger.SUBMIT })));
    // Read in the transaction: the answer shows each one-off's execution as this submit queued it,
    // as triggerJob answers, whatever a worker has made of it since the commit.
    const queued = new Map((await tem.find(Execution, { id: { $in: created.map((c) => c.id) } })).map((e) => [e.id, e]));
    const byId = new Map(oneOffs.map((job) => [job.id, job]));
    for (const c of created) queuedBySubmit.set(byId.get(c.jobId)!, queued.get(c.id)!);
    await notifySchedulesChanged(sql);
    const change = (job: Job) => (existing.has(job.name) ? JobChange.UPDATED : JobChange.CREATED);
    await notifyJobsChanged(sql, owner, jobs.map((job) => ({ id: job.id, change: change(job), paused: job.paused })));
    return jobs;
  });
}

/**
 * A stored job's first fire time after `now`, from what the compile found after its own start. A
 * cron fire time still ahead is the first after `now` too (none came between); one that passed
 * while the file compiled belongs to a schedule that fires often, whose next fire time is cheap
 * to compute here. An interval counts from the job's anchor, `now`.
 */
function firstRunAt(job: Job, first: FirstRun, now: Date): Date | null {
  if (first === null) return null;
  if (first.kind === 'interval') return new Date(now.getTime() + first.everyMs);
  if (first.at === null) return null;
  if (first.at > now.getTime()) return new Date(first.at);
  return upcomingRuns(job, now, 1)[0] ?? null;
}

function fieldsOf(spec: JobSpec) {
  return {
    spec: spec.source,
    definition: spec,
    schedule: spec.schedule,
    timezone: spec.timezone,
    runOnce: spec.runOnce,
    priority: spec.priority,
  };
}
