import { Link } from 'wouter';
import { StatusBadge, statusClass } from '../layout/StatusBadge';
import { inZone } from './time';
import type { TickLedger } from './useTickLedger';
import './TickTimeline.css';

const OUTCOMES = ['FIRED', 'SKIPPED_OVERLAP', 'MISSED', 'PAUSED'] as const;

/**
 * The tick ledger as a timeline, newest first: every fire time with its outcome (colour, icon
 * and word), a catch-up mark for fires made late, and a link to the execution a FIRED tick queued.
 */
export function TickTimeline({ ledger, timezone, oneOff }: { ledger: TickLedger; timezone: string; oneOff: boolean }) {
  const counts = new Map<string, number>();
  for (const t of ledger.ticks) counts.set(t.outcome, (counts.get(t.outcome) ?? 0) + 1);
  return (
    <section aria-labelledby="ticks-title">
      <h2 id="ticks-title">Tick ledger</h2>
      <p className="muted tick-summary">
        Every fire time and what became of it, in {timezone}; updates as ticks are recorded.{' '}
        {ledger.ticks.length > 0 && (
          <span>
            Shown: {OUTCOMES.filter((o) => counts.has(o)).map((o, i) => (
              <span key={o}>
                {i > 0 && ', '}
                {counts.get(o)} {o.toLowerCase().replace('_', ' ')}
              </span>
            ))}
            .
          </span>
        )}
      </p>
      {ledger.error && (
        <p className="error" role="alert">
          Could not load the ledger: {ledger.error}
        </p>
      )}
      {ledger.ticks.length === 0 ? (
        <p className="muted">{oneOff ? 'A one-off job has no fire times: its runs are in the history.' : 'No fire time recorded yet.'}</p>
      ) : (
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a region that scrolls must be reachable by keyboard (axe scrollable-region-focusable)
        <section className="tick-scroll" aria-label="Ticks" tabIndex={0}>
        <ol className="tick-timeline" data-testid="tick-timeline">
          {ledger.ticks.map((tick) => (
            <li key={tick.fireTime} className={`tick ${statusClass(tick.outcome)}`} data-testid="tick" data-outcome={tick.outcome} data-fire-time={tick.fireTime}>
              <span className="tick-dot" aria-hidden="true" />
              <time dateTime={tick.fireTime} className="tick-time">
                {inZone(tick.fireTime, timezone)}
              </time>
              <StatusBadge status={tick.outcome} />
              {tick.catchUp && (
                <span className="tick-catch-up" title="Fired late, as the catch-up of fire times missed while no scheduler ran">
                  catch-up
                </span>
              )}
              {tick.execution && (
                <span className="tick-execution">
                  <Link href={`/executions/${tick.execution.id}`}>run #{tick.execution.number}</Link> <StatusBadge status={tick.execution.status} />
                </span>
              )}
            </li>
          ))}
        </ol>
        </section>
      )}
      {ledger.hasOlder && (
        <button type="button" onClick={() => void ledger.loadOlder()}>
          Show older ticks
        </button>
      )}
    </section>
  );
}
