import { Execution, ExecutionTrigger, Job } from '../entities/index.js';
import { ValidationError } from '../errors.js';
import { compileJobFile } from '../jobfile/compile.js';
import type { RepositoryPolicy } from '../jobfile/repositoryUrl.js';
import type { JobFileResult, JobSpec } from '../jobfile/types.js';
import type { Deps } from './deps.js';
import { insertExecutions } from '../executions/create.js';
import { notifySchedulesChanged } from '../executions/signals.js';
import { sqlOfEm } from '../executions/sql.js';
import { upcomingRuns } from './schedules.js';

/**
 * Checks a job file without storing anything (`validateJobSpec`). Compiling costs the same as
 * for a submit, so a large file takes its turn like one (compileTakingTurns).
 */
export function validateJobFile(source: string, policy?: RepositoryPolicy, maxSecrets?: number): Promise<JobFileResult> {
  return compileTakingTurns(source, policy, maxSecrets);
}

/** What this server lets a job's `repository.url` reach: the workers' settings, checked at submit. */
export function repositoryPolicyOf(config: Deps['config']): RepositoryPolicy {
  return { protocols: config.runner.gitProtocols, localRoot: config.runner.gitLocalRoot };
}

/** Files from this size on are compiled one at a time (see compileTakingTurns). */
const LARGE_FILE_CHARS = 32 * 1024;
/** Between two large compiles, the event loop is left to other requests for this long. */
const TURN_GAP_MS = 20;
let compileTurn: Promise<void> = Promise.resolve();

/**
 * Compiles a job file; a large one waits for the large ones before it and for a turn of the event
 * loop. Compiling is synchronous: the largest file (256 KiB) holds the event loop for a few
 * hundred milliseconds, mostly in the YAML parser. Without turns, N big files arriving together
 * would stall every other request for N times that; with them, for at most one compile.
 */
async function compileTakingTurns(source: string, policy?: RepositoryPolicy, maxSecrets?: number): Promise<JobFileResult> {
  if (source.length < LARGE_FILE_CHARS) return compileJobFile(source, policy, maxSecrets);
  const before = compileTurn;
  let done!: () => void;
  compileTurn = new Promise((resolve) => (done = resolve));
  try {
    await before;
    // A short pause, not just one turn: a request that waited needs a few turns (and maybe a
    // database round trip) to be answered before the loop is held again.
    await new Promise((resolve) => setTimeout(resolve, TURN_GAP_MS));
    return compileJobFile(source, policy, maxSecrets);
  } finally {
    done();
  }
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
  const result = await compileTakingTurns(source, repositoryPolicyOf(deps.config), deps.config.maxSecretsPerJob);
  if (!result.ok) {
    const n = result.diagnostics.length;
    throw new ValidationError(`the job file has ${n} error${n === 1 ? '' : 's'}: ${result.diagnostics[0]!.message}`, result.diagnostics);
  }
  const em = deps.orm.em.fork();
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
    const jobs = result.jobs.map((spec) => {
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
      if (rearm) job.nextRunAt = upcomingRuns(job, now, 1)[0] ?? null;
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
    return jobs;
  });
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
