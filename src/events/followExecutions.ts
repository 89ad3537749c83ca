import type { EntityManager } from '@mikro-orm/postgresql';
import type { Execution } from '../entities/index.js';
import { NotFoundError } from '../errors.js';
import { stepsOf } from '../services/executionQueries.js';
import { findExecution, findJob } from '../services/findOwned.js';
import { isSettled } from './channels.js';
import type { EventHub } from './EventHub.js';
import { stepsOfSnapshot } from './executionSnapshot.js';

/**
 * Most updates waiting for one subscriber. The transport pulls one at a time as the socket
 * drains; a subscriber that falls this far behind is ended with an error rather than buffered
 * without bound (it can subscribe again and read the current state).
 */
export const MAX_PENDING_UPDATES = 1000;

/** The subscriber is so slow that updates had to be dropped. */
export class SubscriberTooSlowError extends Error {
  constructor() {
    super(`subscriber too slow: more than ${MAX_PENDING_UPDATES} updates were waiting; subscribe again`);
    this.name = 'SubscriberTooSlowError';
  }
}

/**
 * `executionUpdated`: every change of status (or of a step's status) of the owner's executions
 * after the subscription starts, optionally narrowed to one job or one execution (both checked
 * to be the owner's). Narrowed to one execution, it completes once that execution is settled
 * (final status, no step pending or running), at once if it already is.
 */
export async function followExecutionUpdates(
  em: EntityManager,
  hub: EventHub,
  owner: string,
  filter: { jobId?: string | null; executionId?: string | null },
): Promise<AsyncGenerator<Execution>> {
  const jobId = filter.jobId ?? null;
  const executionId = filter.executionId ?? null;
  let settledNow = async () => false;
  if (executionId !== null) {
    const execution = await findExecution(em, owner, executionId);
    if (execution === null || (jobId !== null && execution.job.id !== jobId)) throw new NotFoundError('execution', executionId);
    settledNow = async () => {
      await em.refresh(execution);
      return isSettled({ status: execution.status, steps: await stepsOf(em, execution.id) });
    };
  } else if (jobId !== null && (await findJob(em, owner, jobId)) === null) {
    throw new NotFoundError('job', jobId);
  }
  return updates(hub, { owner, jobId, executionId }, settledNow);
}

async function* updates(
  hub: EventHub,
  filter: { owner: string; jobId: string | null; executionId: string | null },
  settledNow: () => Promise<boolean>,
): AsyncGenerator<Execution> {
  const queue: Execution[] = [];
  let overflow = false;
  let wake: (() => void) | null = null;
  // Followed before watching: every change committed after this is notified, and nothing before.
  const { startMark, release: unfollow } = await hub.follow(filter.owner);
  const stop = hub.watchExecutions({
    ...filter,
    startMark,
    deliver(snapshot) {
      if (queue.length >= MAX_PENDING_UPDATES) overflow = true;
      else queue.push(snapshot);
      wake?.();
    },
  });
  // Consecutive identical states (a replay after a lost connection) are sent once.
  const last = new Map<string, string>();
  try {
    // Watching first, then reading: a change in between is queued, not lost.
    if (filter.executionId !== null && (await settledNow())) return;
    for (;;) {
      while (queue.length > 0) {
        const snapshot = queue.shift()!;
        const steps = stepsOfSnapshot(snapshot) ?? [];
        const signature = `${snapshot.status}:${snapshot.attempt}:${steps.map((s) => s.status).join(',')}`;
        if (last.get(snapshot.id) === signature) continue;
        const settled = isSettled({ status: snapshot.status, steps });
        // Only unsettled executions can change again: the map stays as small as the work in flight.
        if (settled) last.delete(snapshot.id);
        else last.set(snapshot.id, signature);
        yield snapshot;
        if (filter.executionId !== null && settled) return;
      }
      if (overflow) throw new SubscriberTooSlowError();
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
  } finally {
    stop();
    unfollow();
  }
}
