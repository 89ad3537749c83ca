import { Job } from '../entities/index.js';
import { ExecutionStatus, TickOutcome } from '../entities/enums.js';
import type { Deps } from './deps.js';
import { isUuid } from './paging.js';
import { fireTimesOffLoop } from './schedules.js';

/** The words a badge may read (docs/design.md#badges); `no status` before a job's first run. */
export type BadgeWord = 'passing' | 'failing' | 'running' | 'stale' | 'no status';

/** What a public badge shows: the job's name and one word, nothing else of the job. */
export interface BadgeState {
  label: string;
  word: BadgeWord;
}

/** The latest execution's status as a word: queued counts as running, any other ending as failing. */
export function statusWord(status: ExecutionStatus | null): BadgeWord {
  if (status === null) return 'no status';
  if (status === ExecutionStatus.QUEUED || status === ExecutionStatus.RUNNING) return 'running';
  return status === ExecutionStatus.SUCCEEDED ? 'passing' : 'failing';
}

/**
 * Whether a scheduled job's ledger has fallen behind: its latest tick is MISSED, or two more fire
 * times of its schedule have passed since its latest tick (since the schedule's anchor when it has
 * none) without being recorded, i.e. the last fire is older than two periods. `secondFireAfter`
 * is the schedule's second fire time after an instant, or null when there is none.
 */
export async function isStale(
  latest: { fireTime: Date; outcome: TickOutcome } | null,
  anchor: Date,
  now: Date,
  secondFireAfter: (after: Date) => Promise<Date | null>,
): Promise<boolean> {
  if (latest?.outcome === TickOutcome.MISSED) return true;
  const due = await secondFireAfter(latest?.fireTime ?? anchor);
  return due !== null && due.getTime() < now.getTime();
}

/**
 * The badge of job `id`, or null unless it exists and opted in with `badge: true`: an unknown id,
 * a malformed one and a job without a badge are one answer, so the route reveals no job's
 * existence. Anyone may ask: the job is found by id alone, and only its name and a word leave.
 */
export async function badgeOf(deps: Pick<Deps, 'orm' | 'pool' | 'offLoop'>, id: string, now = new Date()): Promise<BadgeState | null> {
  if (!isUuid(id)) return null;
  const job = await deps.orm.em.fork().findOne(Job, { id });
  if (job === null || job.definition.badge !== true) return null;
  const { rows } = await deps.pool.query<{ status: ExecutionStatus | null; fire_time: Date | null; outcome: TickOutcome | null }>(
    `select (select status from executions where job_id = $1 order by created_at desc, id desc limit 1) as status,
            t.fire_time, t.outcome
       from (select 1) one left join lateral (select fire_time, outcome from ticks where job_id = $1 order by fire_time desc limit 1) t on true`,
    [job.id],
  );
  const row = rows[0]!;
  const word = statusWord(row.status);
  // A one-off job, or a run_once job past its fire time, has nothing left to fall behind on.
  if (word === 'running' || job.schedule === null || job.nextRunAt === null) return { label: job.name, word };
  const latest = row.fire_time === null ? null : { fireTime: row.fire_time, outcome: row.outcome! };
  const secondFireAfter = (after: Date) =>
    fireTimesOffLoop(deps, job.owner, job.schedule!, job.timezone, after, job.scheduleAnchor, 2).then(
      (times) => times[1] ?? null,
      () => null, // a stored schedule a later Kiln refuses has no fire times, so nothing is overdue
    );
  return { label: job.name, word: (await isStale(latest, job.scheduleAnchor, now, secondFireAfter)) ? 'stale' : word };
}
