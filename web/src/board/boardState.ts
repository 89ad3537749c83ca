import type { BoardJobFieldsFragment, BoardRunFieldsFragment } from '@kiln/sdk';
import type { Status } from '../layout/StatusBadge';

export type BoardJob = BoardJobFieldsFragment;
export type BoardRun = BoardRunFieldsFragment;

/** How many runs the strip shows; the Board query asks for as many (sdk/src/operations/board.graphql). */
export const STRIP_LENGTH = 20;

/**
 * A run's update applied to its job's strip: replaced in place when known, else added as the
 * newest. Runs are ordered by number (per job, increasing), newest first, and cut to the strip.
 * Updates may arrive out of order (a status event racing a refetch): an older state of a run
 * never replaces a newer one.
 */
export function applyRun(job: BoardJob, run: BoardRun): BoardJob {
  const known = job.recentRuns.find((r) => r.id === run.id);
  if (known !== undefined && rank(known) > rank(run)) return job;
  const runs = [run, ...job.recentRuns.filter((r) => r.id !== run.id)].sort((a, b) => b.number - a.number).slice(0, STRIP_LENGTH);
  return { ...job, recentRuns: runs };
}

/** How far along a run is: a finished state is never overwritten by a late RUNNING or QUEUED. */
function rank(run: BoardRun): number {
  if (run.status === 'QUEUED') return 0;
  if (run.status === 'RUNNING') return 1;
  return 2;
}

/** The job's state now: running (or queued) when any recent run is, else paused or idle. */
export function jobState(job: BoardJob): { status: Status; since: string | null } {
  const running = job.recentRuns.find((r) => r.status === 'RUNNING');
  if (running !== undefined) return { status: 'RUNNING', since: running.startedAt };
  const queued = job.recentRuns.find((r) => r.status === 'QUEUED');
  if (queued !== undefined) return { status: 'QUEUED', since: queued.queuedAt };
  return { status: job.paused ? 'PAUSED' : 'IDLE', since: null };
}

/** `1.2 s`, `3 min 4 s`, `2 h 5 min`: a duration in the fewest words that keep it readable. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** A run's duration: finished runs as recorded, a running one up to `now`. */
export function runDuration(run: BoardRun, now: number): number | null {
  if (run.durationMs !== null) return run.durationMs;
  if (run.startedAt !== null) return now - Date.parse(run.startedAt);
  return null;
}

/** A point in time in the viewer's locale, with the zone named when it is not the viewer's own. */
export function formatTime(iso: string, timezone?: string): string {
  // dateStyle/timeStyle cannot be combined with timeZoneName: the parts are spelled out instead.
  const opts: Intl.DateTimeFormatOptions = { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' };
  try {
    return new Intl.DateTimeFormat(undefined, timezone === undefined ? opts : { ...opts, timeZone: timezone, timeZoneName: 'short' }).format(new Date(iso));
  } catch {
    return new Date(iso).toISOString();
  }
}
