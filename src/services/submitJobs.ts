import { ExecutionTrigger, Job } from '../entities/index.js';
import { ValidationError } from '../errors.js';
import { compileJobFile } from '../spec/compile.js';
import type { JobFileResult, JobSpec } from '../spec/types.js';
import { createExecution } from './createExecution.js';
import type { Deps } from './deps.js';
import { notifySchedulesChanged } from '../queue/executionQueue.js';
import { sqlOfEm } from '../queue/sql.js';
import { upcomingRuns } from './schedules.js';

/** Checks a job file without storing anything (`validateJobSpec`). */
export function validateJobFile(source: string): JobFileResult {
  return compileJobFile(source);
}

/**
 * Stores every job of a file for `owner`, all or nothing. A job whose name exists is updated;
 * a one-off job (no schedule) is queued at once. Invalid files store nothing and raise a
 * ValidationError carrying every diagnostic. Returns the jobs in the file's order.
 */
export async function submitJobs(deps: Deps, owner: string, source: string): Promise<Job[]> {
  const result = compileJobFile(source);
  if (!result.ok) {
    const n = result.diagnostics.length;
    throw new ValidationError(`the job file has ${n} error${n === 1 ? '' : 's'}: ${result.diagnostics[0]!.message}`, result.diagnostics);
  }
  const em = deps.orm.em.fork();
  return em.transactional(async (tem) => {
    const now = new Date();
    const jobs: Job[] = [];
    for (const spec of result.jobs) {
      // Serialise concurrent submits of the same name: the second waits, then updates.
      await tem.execute(`select pg_advisory_xact_lock(hashtext(?), hashtext(?))`, [owner, spec.name]);
      let job = await tem.findOne(Job, { owner, name: spec.name });
      // A new or changed schedule starts its ledger at its first fire time after now; an
      // unchanged one keeps its cursor, so resubmitting a file never drops a due tick.
      let rearm = true;
      if (job === null) {
        job = tem.create(Job, { owner, name: spec.name, ...fieldsOf(spec), scheduleAnchor: now });
      } else {
        rearm = job.schedule !== spec.schedule || job.timezone !== spec.timezone || job.runOnce !== spec.runOnce;
        tem.assign(job, fieldsOf(spec));
        if (rearm) job.scheduleAnchor = now;
      }
      if (rearm) job.nextRunAt = upcomingRuns(job, now, 1)[0] ?? null;
      await tem.flush();
      if (spec.schedule === null) {
        await createExecution(tem, job, ExecutionTrigger.SUBMIT, { defaultImage: deps.config.defaultImage });
      }
      jobs.push(job);
    }
    await notifySchedulesChanged(sqlOfEm(tem));
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
