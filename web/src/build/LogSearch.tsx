import { ExecutionLogSearchDocument } from '@kiln/sdk';
import { useRef, useState } from 'react';
import { errorText, kiln } from '../api';

/** Matches a search collects at most: pages of 1000 from the server, which bounds each page's work. */
const MAX_MATCHES = 5000;
/** Requests one search makes at most (each searches a bounded window of the log). */
const MAX_REQUESTS = 40;

interface Props {
  executionId: string;
  /** Called with the match to show (its seq), and the searched text in lower case (null: no search). */
  onJump(seq: number | null, needle: string | null): void;
}

/**
 * Searches the whole stored log on the server (Execution.logSearch), so lines not rendered, or
 * not even loaded, are found; then steps through the matches.
 */
export function LogSearch({ executionId, onJump }: Props) {
  const [text, setText] = useState('');
  const [matches, setMatches] = useState<number[] | null>(null);
  const [at, setAt] = useState(0);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [truncated, setTruncated] = useState(false);
  const generation = useRef(0);
  const lastQuery = useRef('');

  async function run(query: string) {
    const mine = ++generation.current;
    if (query.length === 0) {
      setMatches(null);
      onJump(null, null);
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      const found: number[] = [];
      let after = 0;
      let more = true;
      for (let n = 0; more && n < MAX_REQUESTS && found.length < MAX_MATCHES; n++) {
        const { execution } = await kiln.request(ExecutionLogSearchDocument, { id: executionId, query, afterSeq: after, first: 1000 });
        if (mine !== generation.current) return;
        if (execution === null || execution === undefined) break;
        found.push(...execution.logSearch.matches.map((m) => m.seq));
        after = execution.logSearch.scannedThrough;
        more = execution.logSearch.hasMore;
      }
      setMatches(found);
      setTruncated(more);
      setAt(0);
      onJump(found[0] ?? null, query.toLowerCase());
    } catch (err) {
      if (mine === generation.current) setError(errorText(err));
    } finally {
      if (mine === generation.current) setBusy(false);
    }
  }

  function step(by: number) {
    if (matches === null || matches.length === 0) return;
    const next = (at + by + matches.length) % matches.length;
    setAt(next);
    onJump(matches[next]!, text.toLowerCase());
  }

  return (
    <form
      className="log-search"
      aria-label="Log search"
      onSubmit={(e) => {
        e.preventDefault();
        if (matches !== null && generation.current > 0 && !busy && lastQuery.current === text) step(1);
        else {
          lastQuery.current = text;
          void run(text);
        }
      }}
    >
      <label htmlFor="log-search-input">Search the log</label>
      <input id="log-search-input" type="search" value={text} maxLength={256} onChange={(e) => setText(e.target.value)} placeholder="text in any line" />
      <button type="submit" disabled={busy}>
        {busy ? 'Searching…' : 'Search'}
      </button>
      <button type="button" onClick={() => step(-1)} disabled={!matches?.length} aria-label="Previous match">
        ↑
      </button>
      <button type="button" onClick={() => step(1)} disabled={!matches?.length} aria-label="Next match">
        ↓
      </button>
      <output className="log-search-status" aria-live="polite">
        {error !== undefined
          ? `Search failed: ${error}`
          : matches === null
            ? ''
            : matches.length === 0
              ? 'No match'
              : `${at + 1} of ${matches.length}${truncated ? '+' : ''}`}
      </output>
    </form>
  );
}
