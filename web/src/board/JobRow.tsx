import { PauseJobDocument, ResumeJobDocument, TriggerJobDocument } from '@kiln/sdk';
import { memo } from 'react';
import { Link } from 'wouter';
import { kiln, useAction } from '../api';
import { StatusBadge } from '../layout/StatusBadge';
import { describeSchedule } from './describeSchedule';
import { formatDuration, formatTime, jobState, type BoardJob, type BoardRun } from './boardState';
import { RunStrip } from './RunStrip';

export interface JobRowProps {
  job: BoardJob;
  /** The clock of live durations; only rows with a running job re-render as it ticks. */
  now: number;
  onRun(jobId: string, run: BoardRun): void;
  onJob(job: BoardJob): void;
}

/** One job of the board: its state now, recent runs, schedule, next fire, last tick, and its buttons. */
export const JobRow = memo(function JobRow({ job, now, onRun, onJob }: JobRowProps) {
  const { busy, error, act } = useAction();
  const state = jobState(job);
  const trigger = () =>
    act(async () => {
      const { triggerJob } = await kiln.request(TriggerJobDocument, { id: job.id });
      onRun(job.id, triggerJob);
    });
  const pauseOrResume = () =>
    act(async () => {
      const changed = job.paused ? (await kiln.request(ResumeJobDocument, { id: job.id })).resumeJob : (await kiln.request(PauseJobDocument, { id: job.id })).pauseJob;
      onJob({ ...job, paused: changed.paused, nextRunAt: changed.nextRunAt });
    });
  const headingId = `job-${job.id}`;
  return (
    <li className="job-row" aria-labelledby={headingId} data-job={job.name}>
      <div className="job-name">
        <h2 id={headingId}>
          <Link href={`/jobs/${job.id}`}>{job.name}</Link>
        </h2>
        <span className="job-state" data-state={state.status}>
          <StatusBadge status={state.status}>{state.status === 'RUNNING' && state.since !== null ? <span className="live-duration"> {formatDuration(now - Date.parse(state.since))}</span> : null}</StatusBadge>
          {job.paused && state.status !== 'PAUSED' ? <StatusBadge status="PAUSED" /> : null}
        </span>
      </div>
      <div className="job-strip">
        <RunStrip jobName={job.name} runs={job.recentRuns} now={now} />
      </div>
      <dl className="job-facts">
        <div>
          <dt>Schedule</dt>
          <dd data-testid="schedule">
            {describeSchedule(job.schedule)}
            {job.schedule !== null ? <span className="muted"> ({job.timezone})</span> : null}
          </dd>
        </div>
        <div>
          <dt>Next</dt>
          <dd data-testid="next">{job.nextRunAt === null ? <span className="muted">{job.paused ? 'paused' : 'none'}</span> : <time dateTime={job.nextRunAt}>{formatTime(job.nextRunAt, job.timezone)}</time>}</dd>
        </div>
        <div>
          <dt>Last tick</dt>
          <dd data-testid="last-tick">
            {job.lastTick === null ? (
              <span className="muted">none yet</span>
            ) : (
              <>
                <StatusBadge status={job.lastTick.outcome} /> <time dateTime={job.lastTick.fireTime}>{formatTime(job.lastTick.fireTime, job.timezone)}</time>
                {job.lastTick.catchUp ? <span className="muted"> (catch-up)</span> : null}
              </>
            )}
          </dd>
        </div>
      </dl>
      <div className="job-actions">
        <button type="button" onClick={trigger} disabled={busy} aria-label={`Trigger ${job.name}`}>
          Trigger
        </button>
        {job.schedule !== null ? (
          <button type="button" onClick={pauseOrResume} disabled={busy} aria-label={`${job.paused ? 'Resume' : 'Pause'} ${job.name}`}>
            {job.paused ? 'Resume' : 'Pause'}
          </button>
        ) : null}
        {error !== undefined ? (
          <p className="error" role="alert">
            {error}
          </p>
        ) : null}
      </div>
    </li>
  );
});
