import { JobTicksDocument, type ExecutionStatus, type JobTicksQuery } from '@kiln/sdk';
import { useCallback, useEffect, useRef, useState } from 'react';
import { errorText, kiln } from '../api';

export type LedgerTick = NonNullable<JobTicksQuery['job']>['ticks']['edges'][number]['node'];

/** Ticks asked for at a time: the newest page on every refresh, and each older page. */
export const TICK_PAGE = 50;
/**
 * Ticks raise no event of their own (a PAUSED or MISSED tick changes no execution), so the page
 * asks for the newest ones this often; an execution event asks at once.
 */
export const TICK_POLL_MS = 2000;

export interface TickLedger {
  ticks: LedgerTick[];
  hasOlder: boolean;
  error: string | undefined;
  loadOlder(): Promise<void>;
  refresh(): Promise<void>;
  /** An execution's new status, from the live subscription, shown on its tick. */
  noteExecution(id: string, status: ExecutionStatus): void;
}

/** Merges the newest page into what is shown, newest first, one entry per fire time. */
function mergeHead(shown: LedgerTick[], head: LedgerTick[]): LedgerTick[] {
  const byTime = new Map(shown.map((t) => [t.fireTime, t]));
  for (const t of head) byTime.set(t.fireTime, t);
  return [...byTime.values()].sort((a, b) => Date.parse(b.fireTime) - Date.parse(a.fireTime));
}

/**
 * The job's tick ledger as the page shows it: the newest page, kept fresh by polling, and the
 * older pages the reader asked for, followed by keyset cursor. When more ticks arrived between
 * two refreshes than one page holds, what is shown starts over from the newest page, so the list
 * never has a hole in it.
 */
export function useTickLedger(jobId: string, enabled: boolean): TickLedger {
  const [ticks, setTicks] = useState<LedgerTick[]>([]);
  const [older, setOlder] = useState<{ cursor: string | null; has: boolean }>({ cursor: null, has: false });
  const [error, setError] = useState<string>();
  const shown = useRef<LedgerTick[]>([]);
  const generation = useRef(0);
  const loadingOlder = useRef(false);

  const refresh = useCallback(async () => {
    // An older page under way is merged first; the next poll brings the head.
    if (loadingOlder.current) return;
    const mine = ++generation.current;
    try {
      const { job } = await kiln.request(JobTicksDocument, { id: jobId, first: TICK_PAGE });
      if (mine !== generation.current) return; // a newer refresh or an older page is under way
      if (job === null) throw new Error('this job no longer exists');
      const head = job.ticks.edges.map((e) => e.node);
      const newestShown = shown.current[0];
      const oldestHead = head.at(-1);
      const gap = newestShown === undefined || (job.ticks.pageInfo.hasNextPage && oldestHead !== undefined && Date.parse(oldestHead.fireTime) > Date.parse(newestShown.fireTime));
      shown.current = gap ? head : mergeHead(shown.current, head);
      if (gap) setOlder({ cursor: job.ticks.pageInfo.endCursor ?? null, has: job.ticks.pageInfo.hasNextPage });
      setTicks(shown.current);
      setError(undefined);
    } catch (err) {
      if (mine === generation.current) setError(errorText(err));
    }
  }, [jobId]);

  const loadOlder = useCallback(async () => {
    if (older.cursor === null || loadingOlder.current) return;
    // A head refresh already under way must not reset the list under the page being added.
    const mine = ++generation.current;
    loadingOlder.current = true;
    try {
      const { job } = await kiln.request(JobTicksDocument, { id: jobId, first: TICK_PAGE, after: older.cursor });
      if (mine !== generation.current || job === null) return;
      shown.current = mergeHead(shown.current, job.ticks.edges.map((e) => e.node));
      setTicks(shown.current);
      setOlder({ cursor: job.ticks.pageInfo.endCursor ?? null, has: job.ticks.pageInfo.hasNextPage });
    } catch (err) {
      if (mine === generation.current) setError(errorText(err));
    } finally {
      loadingOlder.current = false;
    }
  }, [jobId, older.cursor]);

  const noteExecution = useCallback<TickLedger['noteExecution']>((id, status) => {
    if (!shown.current.some((t) => t.execution?.id === id)) return;
    shown.current = shown.current.map((t) => (t.execution?.id === id ? { ...t, execution: { ...t.execution!, status } } : t));
    setTicks(shown.current);
  }, []);

  useEffect(() => {
    shown.current = [];
    setTicks([]);
    if (!enabled) return;
    void refresh();
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') void refresh();
    }, TICK_POLL_MS);
    return () => {
      clearInterval(timer);
      generation.current++;
    };
  }, [refresh, enabled]);

  return { ticks, hasOlder: older.has, error, loadOlder, refresh, noteExecution };
}
