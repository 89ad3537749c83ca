import type { SubmitJobMutation } from '@kiln/sdk';
import { Link } from 'wouter';
import { StatusBadge } from '../layout/StatusBadge';

type SubmittedJob = SubmitJobMutation['submitJob']['jobs'][number];

/** What a submit made: each job with a link to its page, and the run a one-off job queued. */
export function SubmitResult({ jobs }: { jobs: readonly SubmittedJob[] }) {
  return (
    <section aria-labelledby="submitted-title" className="submitted" data-testid="submitted">
      <h2 id="submitted-title">
        Submitted {jobs.length} {jobs.length === 1 ? 'job' : 'jobs'}
      </h2>
      <ul>
        {jobs.map((job) => (
          <li key={job.id}>
            <Link href={`/jobs/${job.id}`}>{job.name}</Link>{' '}
            {job.schedule === null ? <span className="muted">one-off</span> : <code>{job.schedule}</code>}
            {job.lastExecution && (
              <>
                {' · '}
                <Link href={`/executions/${job.lastExecution.id}`}>run #{job.lastExecution.number}</Link> <StatusBadge status={job.lastExecution.status} />
              </>
            )}
            {job.nextRunAt && <span className="muted"> · next {new Date(job.nextRunAt).toISOString().replace('.000Z', 'Z')}</span>}
          </li>
        ))}
      </ul>
      <Link href="/">See them on the board</Link>
    </section>
  );
}
