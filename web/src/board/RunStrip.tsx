import { Link } from 'wouter';
import { statusClass, statusIcon, statusLabel } from '../layout/StatusBadge';
import { formatDuration, runDuration, STRIP_LENGTH, type BoardRun } from './boardState';

/**
 * The last runs of a job, oldest to newest from left to right: each a link to its build page,
 * coloured and iconed by status, its height by its duration relative to the strip's longest.
 * Screen readers get a summary and each link's words (number, status, duration).
 */
export function RunStrip({ jobName, runs, now }: { jobName: string; runs: BoardRun[]; now: number }) {
  if (runs.length === 0) return <span className="muted">no runs yet</span>;
  const durations = runs.map((r) => runDuration(r, now));
  const longest = Math.max(1, ...durations.map((d) => d ?? 0));
  const counts = new Map<string, number>();
  for (const r of runs) counts.set(statusLabel(r.status), (counts.get(statusLabel(r.status)) ?? 0) + 1);
  const summary = [...counts].map(([label, n]) => `${n} ${label}`).join(', ');
  const ordered = runs.map((run, i) => ({ run, duration: durations[i]! })).reverse();
  return (
    <div className="run-strip">
      <span className="visually-hidden">
        Last {runs.length} runs of {jobName}: {summary}.
      </span>
      <ol aria-label={`Last ${Math.min(runs.length, STRIP_LENGTH)} runs of ${jobName}`}>
        {ordered.map(({ run, duration }) => {
          const words = `#${run.number} ${statusLabel(run.status)}${duration === null ? '' : `, ${formatDuration(duration)}`}`;
          const height = duration === null ? 30 : 30 + Math.round((70 * duration) / longest);
          return (
            <li key={run.id}>
              <Link href={`/executions/${run.id}`} className={`run ${statusClass(run.status)}`} title={words} aria-label={words} data-run-status={run.status}>
                <span className="run-bar" style={{ height: `${height}%` }}>
                  <span aria-hidden="true">{statusIcon(run.status)}</span>
                </span>
              </Link>
            </li>
          );
        })}
      </ol>
    </div>
  );
}
