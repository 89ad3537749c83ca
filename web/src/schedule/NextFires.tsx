import type { JobNextFiresQuery } from '@kiln/sdk';

type Fire = NonNullable<JobNextFiresQuery['job']>['nextFires'][number];

/**
 * The next fire times as the job's zone reads them, each with its UTC offset; a fire whose
 * offset differs from the one before is marked, so a daylight-saving change is visible.
 */
export function NextFires({ fires: asked, timezone, paused, oneOff }: { fires: readonly Fire[]; timezone: string; paused: boolean; oneOff: boolean }) {
  // The list is asked for again every few seconds; between two answers, times already past go.
  const now = Date.now();
  const fires = asked.filter((f) => Date.parse(f.at) > now);
  return (
    <section aria-labelledby="next-fires-title">
      <h2 id="next-fires-title">
        Next fire times <span className="muted">({timezone})</span>
      </h2>
      {oneOff ? (
        <p className="muted">A one-off job: it has no schedule.</p>
      ) : paused ? (
        <p className="muted">Paused: no fire times until it is resumed.</p>
      ) : fires.length === 0 ? (
        <p className="muted">No fire times to come.</p>
      ) : (
        <ol className="next-fires" data-testid="next-fires">
          {fires.map((fire, i) => {
            const shifted = i > 0 && fires[i - 1]!.utcOffset !== fire.utcOffset;
            return (
              <li key={fire.at} data-offset={fire.utcOffset}>
                <time dateTime={fire.at}>{fire.wallClock.replace('T', ' ')}</time> <span className="next-fires-offset">UTC{fire.utcOffset}</span>
                {shifted && <span className="next-fires-shift"> offset changes (daylight saving)</span>}
              </li>
            );
          })}
        </ol>
      )}
    </section>
  );
}
