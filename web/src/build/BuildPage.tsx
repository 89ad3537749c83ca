import { CancelExecutionDocument, ExecutionDocument, ExecutionUpdatedDocument, TriggerJobDocument, type ExecutionQuery } from '@kiln/sdk';
import { useCallback, useEffect, useState } from 'react';
import { Link, useLocation } from 'wouter';
import { kiln, useAction, useQuery, useSubscription } from '../api';
import { StatusBadge, type Status } from '../layout/StatusBadge';
import { LogSearch } from './LogSearch';
import { LogViewer, type Focus } from './LogViewer';
import { bytes, clock, duration } from './format';
import { useStatusInTab } from './statusIcon';
import { useBuildLog } from './useBuildLog';
import './BuildPage.css';

type Execution = NonNullable<ExecutionQuery['execution']>;
const FINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT']);

/** `#L123` -> 123. */
function hashLine(): number | null {
  const m = /^#L(\d+)$/.exec(location.hash);
  return m === null ? null : Number(m[1]);
}

/** The current time, ticking each second while `live`. */
function useNow(live: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!live) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [live]);
  return now;
}

/** The build page `/executions/:id` (docs/design.md#build-page). */
export function BuildPage({ id }: { id: string }) {
  // A new id is a new page: nothing of the previous log is kept.
  return <BuildView key={id} id={id} />;
}

function BuildView({ id }: { id: string }) {
  const query = useQuery(ExecutionDocument, { id });
  const [live, setLive] = useState<Partial<Execution>>({});
  const execution: Execution | null | undefined = query.data === undefined ? undefined : query.data.execution === null || query.data.execution === undefined ? null : { ...query.data.execution, ...live };
  const finished = execution !== undefined && execution !== null && FINAL.has(execution.status);

  useSubscription(
    ExecutionUpdatedDocument,
    { executionId: id },
    ({ executionUpdated }) => {
      setLive({ ...executionUpdated });
      if (FINAL.has(executionUpdated.status) || executionUpdated.status === 'RUNNING') void query.refetch();
    },
    { enabled: execution !== undefined && execution !== null && !finished, onResubscribe: () => void query.refetch() },
  );

  useStatusInTab(execution?.status, execution ? `${execution.job.name} #${execution.number}` : 'build');
  // Loaded beside the execution's query, not after it: a not-found answer makes its 404 moot.
  const log = useBuildLog(id, true);

  // Which line to show: the permalink's on load, then search hits and clicked line numbers.
  const [focus, setFocus] = useState<Focus | null>(() => {
    const seq = hashLine();
    return seq === null ? null : { seq, nonce: 0 };
  });
  const [highlighted, setHighlighted] = useState<number | null>(hashLine());
  const [needle, setNeedle] = useState<string | null>(null);
  useEffect(() => {
    const onHash = () => {
      const seq = hashLine();
      if (seq === null) return;
      setHighlighted(seq);
      setFocus({ seq, nonce: Date.now() });
    };
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const onLineLink = useCallback((seq: number) => {
    history.replaceState(null, '', `#L${seq}`);
    setHighlighted(seq);
  }, []);
  const onJump = useCallback((seq: number | null, text: string | null) => {
    setNeedle(text);
    if (seq === null) return;
    setHighlighted(seq);
    setFocus({ seq, nonce: Date.now() });
  }, []);

  if (query.error !== undefined && execution === undefined) {
    return (
      <main id="main" className="page build-page">
        <h1>Build</h1>
        <p role="alert">Could not load this execution: {query.error}</p>
      </main>
    );
  }
  if (execution === undefined) {
    return (
      <main id="main" className="page build-page">
        <h1>Build</h1>
        <p aria-live="polite">Loading…</p>
      </main>
    );
  }
  if (execution === null) {
    return (
      <main id="main" className="page build-page">
        <h1>Not found</h1>
        <p>There is no execution {id} among yours.</p>
        <p>
          <Link href="/">Back to the board</Link>
        </p>
      </main>
    );
  }

  return (
    <main id="main" className="page build-page">
      <BuildHeader execution={execution} finished={finished} />
      <Steps execution={execution} finished={finished} />
      <Artifacts execution={execution} />
      <section className="build-log" aria-labelledby="log-heading">
        <div className="build-log-head">
          <h2 id="log-heading">Log</h2>
          <a className="button" href={`/api/v1/executions/${execution.id}/log`} download={`${execution.job.name}-${execution.number}.log`}>
            Download raw log
          </a>
        </div>
        <LogSearch executionId={execution.id} onJump={onJump} />
        {log.error !== undefined && <p role="alert">The log stopped updating: {log.error}</p>}
        {!log.loaded && <p aria-live="polite">Loading the log…</p>}
        <LogViewer lines={log.lines} version={log.version} steps={execution.steps} finished={finished} focus={focus} highlighted={highlighted} needle={needle} onLineLink={onLineLink} />
      </section>
    </main>
  );
}

function BuildHeader({ execution, finished }: { execution: Execution; finished: boolean }) {
  const [, navigate] = useLocation();
  const now = useNow(!finished);
  const { busy, error, act } = useAction();
  const cancel = () => act(async () => void (await kiln.request(CancelExecutionDocument, { id: execution.id })));
  const rerun = () =>
    act(async () => {
      const { triggerJob } = await kiln.request(TriggerJobDocument, { id: execution.job.id });
      navigate(`/executions/${triggerJob.id}`);
    });
  return (
    <header className="build-header">
      <h1>
        <Link href={`/jobs/${execution.job.id}`}>{execution.job.name}</Link> <span className="build-number">#{execution.number}</span>{' '}
        <StatusBadge status={execution.status as Status} />
      </h1>
      <div className="build-actions">
        {!finished && (
          <button type="button" onClick={cancel} disabled={busy}>
            Cancel
          </button>
        )}
        <button type="button" onClick={rerun} disabled={busy}>
          Re-run
        </button>
        {error !== undefined && <span role="alert">{error}</span>}
      </div>
      <dl className="build-facts">
        <dt>Trigger</dt>
        <dd>{execution.trigger.toLowerCase()}</dd>
        <dt>Attempt</dt>
        <dd>{execution.attempt}</dd>
        <dt>Queued</dt>
        <dd>
          <time dateTime={execution.queuedAt}>{clock(execution.queuedAt)}</time>
          {execution.startedAt ? ` (waited ${duration(execution.queuedAt, execution.startedAt)})` : ` (waiting ${duration(execution.queuedAt, null, now)})`}
        </dd>
        <dt>Started</dt>
        <dd>{execution.startedAt ? <time dateTime={execution.startedAt}>{clock(execution.startedAt)}</time> : '—'}</dd>
        <dt>Finished</dt>
        <dd>{execution.finishedAt ? <time dateTime={execution.finishedAt}>{clock(execution.finishedAt)}</time> : '—'}</dd>
        <dt>Duration</dt>
        <dd className="build-duration">{execution.startedAt ? duration(execution.startedAt, execution.finishedAt ?? null, now) : '—'}</dd>
        <dt>Worker</dt>
        <dd>{execution.worker ?? '—'}</dd>
        <dt>Image</dt>
        <dd>
          <code>{execution.image}</code>
        </dd>
        {execution.exitCode !== null && execution.exitCode !== undefined && (
          <>
            <dt>Exit code</dt>
            <dd>{execution.exitCode}</dd>
          </>
        )}
      </dl>
      {execution.error && (
        <p className="build-error" role="alert">
          {execution.error}
        </p>
      )}
    </header>
  );
}

function Steps({ execution, finished }: { execution: Execution; finished: boolean }) {
  const now = useNow(!finished);
  return (
    <section aria-labelledby="steps-heading">
      <h2 id="steps-heading">Steps</h2>
      <ol className="build-steps">
        {execution.steps.map((s) => (
          <li key={s.index} className={`build-step step-${s.status.toLowerCase()}`}>
            <span className="build-step-status">{s.status.toLowerCase()}</span>
            <span className="build-step-name">{s.name}</span>
            <span className="build-step-duration">{s.startedAt ? duration(s.startedAt, s.finishedAt ?? null, now) : ''}</span>
            {s.exitCode !== null && s.exitCode !== undefined && <span className="build-step-exit">exit {s.exitCode}</span>}
          </li>
        ))}
      </ol>
    </section>
  );
}

function Artifacts({ execution }: { execution: Execution }) {
  if (execution.artifacts.length === 0) return null;
  return (
    <section aria-labelledby="artifacts-heading">
      <h2 id="artifacts-heading">Artifacts</h2>
      <ul className="build-artifacts">
        {execution.artifacts.map((a) => (
          <li key={a.path}>
            {a.url ? <a href={a.url}>{a.path}</a> : a.path} <span className="build-artifact-size">{bytes(a.size)}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}
