import { BoardDocument, BoardExecutionUpdatedDocument, BoardJobDocument, BoardJobUpdatedDocument, type BoardJobUpdatedSubscription, type BoardQuery } from '@kiln/sdk';
import { useCallback, useEffect, useRef, useState } from 'react';
import { Link } from 'wouter';
import { errorText, kiln, useSubscription } from '../api';
import { applyRun, type BoardJob, type BoardRun } from './boardState';
import { JobRow } from './JobRow';
import './Board.css';

/** Jobs per request: the API's largest page (services/paging.ts), each page one statement per field. */
const PAGE = 100;

/**
 * The board (`/`): every job of the user with its state now, live (docs/design.md#web-board).
 * Loaded a page of 100 jobs per request (the first page draws at once); kept live by one
 * subscription to all of the user's execution changes and one to their job changes (submitted,
 * paused, resumed, deleted elsewhere); a job whose run was queued by its schedule, or that changed,
 * is read again (its next fire and last tick moved), a few at once after a short pause.
 */
export function BoardPage() {
  const [jobs, setJobs] = useState<Map<string, BoardJob>>(new Map());
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string>();
  const generation = useRef(0);
  /** The jobs as last rendered, for event handlers that must not wait for a render. */
  const shown = useRef(jobs);
  shown.current = jobs;
  const now = useNow(jobsRunning(jobs));

  const loadAll = useCallback(async () => {
    const mine = ++generation.current;
    setLoading(true);
    try {
      const next = new Map<string, BoardJob>();
      let after: string | null = null;
      do {
        const { jobs: page }: BoardQuery = await kiln.request(BoardDocument, { first: PAGE, after });
        if (mine !== generation.current) return;
        for (const edge of page.edges) next.set(edge.node.id, edge.node);
        after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
        setJobs(new Map(next));
      } while (after !== null);
      setError(undefined);
    } catch (err) {
      if (mine === generation.current) setError(errorText(err));
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  }, []);
  useEffect(() => {
    void loadAll();
  }, [loadAll]);

  const stale = useRef(new Set<string>());
  /** Jobs a `jobUpdated` event said were deleted (ids are never reused). */
  const deleted = useRef(new Set<string>());
  const refreshTimer = useRef<ReturnType<typeof setTimeout>>(undefined);
  const refreshSoon = useCallback((jobId: string) => {
    stale.current.add(jobId);
    refreshTimer.current ??= setTimeout(async () => {
      refreshTimer.current = undefined;
      const ids = [...stale.current];
      stale.current.clear();
      for (const id of ids) {
        try {
          const { job } = await kiln.request(BoardJobDocument, { id });
          setJobs((all) => {
            const next = new Map(all);
            // A read that raced the job's deletion must not bring its row back.
            if (job === null || deleted.current.has(id)) next.delete(id);
            else next.set(id, { ...job, recentRuns: mergeRuns(job.recentRuns, all.get(id)?.recentRuns ?? []) });
            return next;
          });
        } catch {
          // The next event or a reload tries again; the row keeps what it showed.
        }
      }
    }, 750);
  }, []);
  useEffect(() => () => clearTimeout(refreshTimer.current), []);

  const onRun = useCallback(
    (jobId: string, run: BoardRun) => {
      const known = shown.current.has(jobId);
      setJobs((all) => {
        const job = all.get(jobId);
        return job === undefined ? all : new Map(all).set(jobId, applyRun(job, run));
      });
      // A job submitted elsewhere, or a schedule that fired: what the event does not carry.
      if (!known || (run.status === 'QUEUED' && run.trigger === 'SCHEDULE')) refreshSoon(jobId);
    },
    [refreshSoon],
  );
  const onJob = useCallback((job: BoardJob) => {
    setJobs((all) => new Map(all).set(job.id, job));
    refreshSoon(job.id);
  }, [refreshSoon]);

  // Jobs changed elsewhere (the CLI, another tab, the API): a deleted row goes at once, a paused or
  // resumed one changes its state at once; each is read again for what the event does not carry.
  const onJobEvent = useCallback(
    ({ jobUpdated: event }: BoardJobUpdatedSubscription) => {
      if (event.deleted) {
        stale.current.delete(event.id);
        deleted.current.add(event.id);
        setJobs((all) => {
          if (!all.has(event.id)) return all;
          const next = new Map(all);
          next.delete(event.id);
          return next;
        });
        return;
      }
      setJobs((all) => {
        const job = all.get(event.id);
        if (job === undefined || job.paused === event.paused) return all;
        // A paused job shows no next fire (as the API answers); a resumed one's comes with the read below.
        return new Map(all).set(event.id, { ...job, paused: event.paused, nextRunAt: event.paused ? null : job.nextRunAt });
      });
      refreshSoon(event.id);
    },
    [refreshSoon],
  );

  useSubscription(BoardExecutionUpdatedDocument, {}, ({ executionUpdated: { job, ...run } }) => onRun(job.id, run), { onResubscribe: loadAll });
  useSubscription(BoardJobUpdatedDocument, {}, onJobEvent, { onResubscribe: loadAll });

  const list = [...jobs.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return (
    <main id="main" className="page board" aria-busy={loading}>
      <div className="board-head">
        <h1>Jobs</h1>
        <span className="muted" aria-live="polite">
          {loading && jobs.size === 0 ? 'Loading…' : `${jobs.size} job${jobs.size === 1 ? '' : 's'}${loading ? ', loading more…' : ''}`}
        </span>
      </div>
      {error !== undefined ? (
        <p className="error" role="alert">
          The board could not be loaded: {error}{' '}
          <button type="button" onClick={() => void loadAll()}>
            Retry
          </button>
        </p>
      ) : null}
      {!loading && jobs.size === 0 && error === undefined ? (
        <p>
          No jobs yet. <Link href="/submit">Submit a job file</Link>.
        </p>
      ) : null}
      <ul className="job-list" data-testid="board">
        {list.map((job) => (
          <JobRow key={job.id} job={job} now={jobState0(job) ? now : 0} onRun={onRun} onJob={onJob} />
        ))}
      </ul>
    </main>
  );
}

/** Whether a row shows a live duration, so only those rows re-render as the clock ticks. */
function jobState0(job: BoardJob): boolean {
  return job.recentRuns.some((r) => r.status === 'RUNNING');
}

function jobsRunning(jobs: Map<string, BoardJob>): boolean {
  for (const job of jobs.values()) if (jobState0(job)) return true;
  return false;
}

/** A refetched strip, with any run the subscription delivered meanwhile kept in its newer state. */
function mergeRuns(fetched: BoardRun[], shown: BoardRun[]): BoardRun[] {
  let job = { recentRuns: fetched } as BoardJob;
  for (const run of shown) if (fetched.some((f) => f.id === run.id)) job = applyRun(job, run);
  return job.recentRuns;
}

/** The current time, ticking each second while `live`; frozen otherwise (no timer at all). */
function useNow(live: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!live) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [live]);
  return now;
}
