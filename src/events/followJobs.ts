import type { EntityManager } from '@mikro-orm/postgresql';
import { NotFoundError } from '../errors.js';
import { JobChange, type JobChangeEntry } from '../executions/signals.js';
import { findJob } from '../services/findOwned.js';
import type { EventHub } from './EventHub.js';
import { MAX_PENDING_UPDATES, SubscriberTooSlowError } from './followExecutions.js';

/** One `jobUpdated` event: the change as notified, and whether it removed the job. */
export interface JobUpdate extends JobChangeEntry {
  deleted: boolean;
}

/** Job events may have been lost (the hub's listening connection dropped): the client must re-read. */
export class JobEventsInterruptedError extends Error {
  constructor() {
    super('job events were interrupted: subscribe again and read the jobs again');
    this.name = 'JobEventsInterruptedError';
  }
}

/**
 * `jobUpdated`: each of the owner's jobs created, replaced, paused, resumed or deleted after the
 * subscription starts (docs/design.md#job-events), optionally narrowed to one job (checked to be
 * the owner's), in commit order. Narrowed to one job, it completes after that job's deletion.
 */
export async function followJobUpdates(em: EntityManager, hub: EventHub, owner: string, jobId: string | null): Promise<AsyncGenerator<JobUpdate>> {
  if (jobId !== null && (await findJob(em, owner, jobId)) === null) throw new NotFoundError('job', jobId);
  return jobUpdates(hub, owner, jobId);
}

async function* jobUpdates(hub: EventHub, owner: string, jobId: string | null): AsyncGenerator<JobUpdate> {
  const queue: JobChangeEntry[] = [];
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  // Followed before watching: every change committed after this is notified, and nothing before.
  const { startMark, release: unfollow } = await hub.follow(owner);
  const stop = hub.watchJobs({
    owner,
    startMark,
    jobId,
    deliver(change) {
      if (queue.length >= MAX_PENDING_UPDATES) failure ??= new SubscriberTooSlowError();
      else queue.push(change);
      wake?.();
    },
    lost() {
      failure ??= new JobEventsInterruptedError();
      wake?.();
    },
  });
  try {
    for (;;) {
      while (queue.length > 0) {
        const change = queue.shift()!;
        const deleted = change.change === JobChange.DELETED;
        yield { ...change, deleted };
        if (jobId !== null && deleted) return;
      }
      if (failure !== null) throw failure;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
  } finally {
    stop();
    unfollow();
  }
}
