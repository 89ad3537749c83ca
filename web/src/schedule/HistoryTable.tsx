import { Link } from 'wouter';
import { StatusBadge } from '../layout/StatusBadge';
import { duration, inZone } from './time';
import type { History } from './useHistory';

/** The job's executions, newest first, with paging. */
export function HistoryTable({ history, timezone }: { history: History; timezone: string }) {
  return (
    <section aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      {history.error && (
        <p className="error" role="alert">
          Could not load the history: {history.error}
        </p>
      )}
      {history.runs.length === 0 ? (
        <p className="muted">No runs yet.</p>
      ) : (
        <div className="history-scroll">
          <table className="history" data-testid="history">
            <thead>
              <tr>
                <th scope="col">Run</th>
                <th scope="col">Status</th>
                <th scope="col">Trigger</th>
                <th scope="col">Queued ({timezone})</th>
                <th scope="col">Duration</th>
              </tr>
            </thead>
            <tbody>
              {history.runs.map((run) => (
                <tr key={run.id} data-testid="history-row">
                  <td>
                    <Link href={`/executions/${run.id}`}>#{run.number}</Link>
                    {run.attempt > 1 && <span className="muted"> attempt {run.attempt}</span>}
                  </td>
                  <td>
                    <StatusBadge status={run.status} />
                  </td>
                  <td>{run.trigger.toLowerCase()}</td>
                  <td>
                    <time dateTime={run.queuedAt}>{inZone(run.queuedAt, timezone)}</time>
                  </td>
                  <td>{duration(run.durationMs)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <nav className="history-pages" aria-label="History pages">
        <button type="button" onClick={history.newer} disabled={history.page === 0}>
          Newer
        </button>
        <span className="muted">Page {history.page + 1}</span>
        <button type="button" onClick={history.older} disabled={!history.hasOlder}>
          Older
        </button>
      </nav>
    </section>
  );
}
