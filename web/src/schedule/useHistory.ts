import { JobHistoryDocument, type JobHistoryQuery } from '@kiln/sdk';
import { useCallback, useEffect, useRef, useState } from 'react';
import { errorText, kiln } from '../api';

export type HistoryRun = JobHistoryQuery['executions']['edges'][number]['node'];

export const HISTORY_PAGE = 20;

export interface History {
  runs: HistoryRun[];
  /** 0 for the newest page. */
  page: number;
  hasOlder: boolean;
  error: string | undefined;
  older(): void;
  newer(): void;
  refresh(): Promise<void>;
}

/**
 * The job's executions, newest first, a page at a time. Keyset cursors only go forward, so the
 * cursor of each page seen is kept to go back; the newest page is refreshed by live events.
 */
export function useHistory(jobId: string): History {
  // cursors[i] is the `after` of page i (null for the newest).
  const [cursors, setCursors] = useState<Array<string | null>>([null]);
  const [page, setPage] = useState(0);
  const [data, setData] = useState<JobHistoryQuery['executions']>();
  const [error, setError] = useState<string>();
  const generation = useRef(0);
  const after = cursors[page] ?? null;

  const refresh = useCallback(async () => {
    const mine = ++generation.current;
    try {
      const result = await kiln.request(JobHistoryDocument, { jobId, first: HISTORY_PAGE, after });
      if (mine !== generation.current) return; // stale: the reader moved to another page
      setData(result.executions);
      setError(undefined);
    } catch (err) {
      if (mine === generation.current) setError(errorText(err));
    }
  }, [jobId, after]);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  const older = useCallback(() => {
    const next = data?.pageInfo.endCursor;
    if (!data?.pageInfo.hasNextPage || !next) return;
    setCursors((c) => [...c.slice(0, page + 1), next]);
    setPage((p) => p + 1);
  }, [data, page]);

  const newer = useCallback(() => setPage((p) => Math.max(0, p - 1)), []);

  return { runs: data?.edges.map((e) => e.node) ?? [], page, hasOlder: data?.pageInfo.hasNextPage ?? false, error, older, newer, refresh };
}
