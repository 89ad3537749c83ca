import { BoardJobUpdatedDocument, ExecutionUpdatedDocument, JobNextFiresDocument, JobScheduleDocument, PauseJobDocument, ResumeJobDocument, TriggerJobDocument } from '@kiln/sdk';
import { useCallback, useEffect, useRef, useState } from 'react';
import { Link } from 'wouter';
import { errorText, kiln, useQuery, useSubscription } from '../api';
import { StatusBadge } from '../layout/StatusBadge';
import { HistoryTable } from './HistoryTable';
import { JobFileView } from './JobFileView';
import { NextFires } from './NextFires';
import { TickTimeline } from './TickTimeline';
import { useHistory } from './useHistory';
import { useTickLedger } from './useTickLedger';
import './SchedulePage.css';

const FIRES_SHOWN = 10;
/** The next fire times are asked for again once the first has passed, but not more often than this. */
const FIRES_REFRESH_MIN_MS = 5000;
const EVENT_COALESCE_MS = 300;

/** The schedule page (`/jobs/:id`, docs/design.md#schedule-page). */
export function SchedulePage({ id }: { id: string }) {
  const job = useQuery(JobScheduleDocument, { id });
  const fires = useQuery(JobNextFiresDocument, { id, count: FIRES_SHOWN });
  // A one-off job has no ticks: nothing to poll.
  const ledger = useTickLedger(id, typeof job.data?.job?.schedule === 'string');
  const history = useHistory(id);

  // A per-second job sends several events a second: they coalesce into one refresh per window.
  const pending = useRef<ReturnType<typeof setTimeout>>();
  useEffect(() => () => clearTimeout(pending.current), []);
  const latest = useRef({ ledger, history });
  latest.current = { ledger, history };
  const refreshSoon = useCallback(() => {
    if (pending.current !== undefined) return;
    pending.current = setTimeout(() => {
      pending.current = undefined;
      void latest.current.ledger.refresh();
      if (latest.current.history.page === 0) void latest.current.history.refresh();
    }, EVENT_COALESCE_MS);
  }, []);
  useSubscription(
    ExecutionUpdatedDocument,
    { jobId: id },
    (event) => {
      ledger.noteExecution(event.executionUpdated.id, event.executionUpdated.status);
      refreshSoon();
    },
    { onResubscribe: refreshSoon },
  );
  // Paused, resumed, replaced or deleted elsewhere: the header, the next fires and the ledger (a
  // resume records the PAUSED ticks) are read again; a deleted job reads as not found.
  useSubscription(BoardJobUpdatedDocument, { jobId: id }, () => {
    void job.refetch();
    void fires.refetch();
    refreshSoon();
  });

  const first = fires.data?.job?.nextFires[0]?.at;
  const { refetch } = fires;
  useEffect(() => {
    if (first === undefined) return;
    const timer = setTimeout(() => void refetch(), Math.max(Date.parse(first) - Date.now(), FIRES_REFRESH_MIN_MS));
    return () => clearTimeout(timer);
  }, [first, refetch]);

  useEffect(() => {
    const name = job.data?.job?.name;
    document.title = name ? `${name} · Kiln` : 'Job · Kiln';
  }, [job.data]);

  if (job.data === undefined) {
    return (
      <main id="main" className="page">
        <h1>Job</h1>
        {job.error ? (
          <p className="error" role="alert">
            Could not load the job: {job.error}
          </p>
        ) : (
          <p className="muted">Loading…</p>
        )}
      </main>
    );
  }
  const j = job.data.job;
  if (j === null) {
    return (
      <main id="main" className="page">
        <h1>Job not found</h1>
        <p>There is no job of yours with this id.</p>
        <Link href="/">Back to the board</Link>
      </main>
    );
  }
  return (
    <main id="main" className="page schedule-page">
      <header className="schedule-head">
        <h1>{j.name}</h1>
        {j.paused && <StatusBadge status="PAUSED" />}
        <p className="muted schedule-what">
          {j.schedule === null ? 'one-off' : <code>{j.schedule}</code>} · {j.timezone}
          {j.runOnce && ' · run once'} · priority {j.priority} · image <code>{j.image}</code>
        </p>
        <JobActions
          id={j.id}
          paused={j.paused}
          scheduled={j.schedule !== null}
          onChange={() => {
            void job.refetch();
            void fires.refetch();
          }}
        />
      </header>
      <div className="schedule-grid">
        <div className="schedule-side">
          <JobFileView text={j.spec} />
          <NextFires fires={fires.data?.job?.nextFires ?? []} timezone={j.timezone} paused={j.paused} oneOff={j.schedule === null} />
        </div>
        <div className="schedule-main">
          <TickTimeline ledger={ledger} timezone={j.timezone} oneOff={j.schedule === null} />
          <HistoryTable history={history} timezone={j.timezone} />
        </div>
      </div>
    </main>
  );
}

/** Pause, resume and run now; the outcome is announced in a live region. */
function JobActions({ id, paused, scheduled, onChange }: { id: string; paused: boolean; scheduled: boolean; onChange: () => void }) {
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<React.ReactNode>(null);
  const act = async (what: () => Promise<React.ReactNode>) => {
    setBusy(true);
    try {
      setMessage(await what());
      onChange();
    } catch (err) {
      setMessage(<span className="error">{errorText(err)}</span>);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="schedule-actions">
      {scheduled &&
        (paused ? (
          <button type="button" disabled={busy} onClick={() => act(async () => {
                await kiln.request(ResumeJobDocument, { id });
                return 'Resumed.';
              })}>
            Resume
          </button>
        ) : (
          <button type="button" disabled={busy} onClick={() => act(async () => {
                await kiln.request(PauseJobDocument, { id });
                return 'Paused.';
              })}>
            Pause
          </button>
        ))}
      <button
        type="button"
        className="primary"
        disabled={busy}
        onClick={() =>
          act(async () => {
            const run = (await kiln.request(TriggerJobDocument, { id })).triggerJob;
            return (
              <>
                Queued <Link href={`/executions/${run.id}`}>run #{run.number}</Link>.
              </>
            );
          })
        }
      >
        Run now
      </button>
      <span role="status" className="schedule-message">
        {message}
      </span>
    </div>
  );
}
