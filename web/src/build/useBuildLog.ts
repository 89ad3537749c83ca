import { ExecutionLogPageDocument, ExecutionLogsDocument, type LogChunkFieldsFragment } from '@kiln/sdk';
import { useEffect, useRef, useState } from 'react';
import { errorText, kiln } from '../api';
import { LogLines } from './logLines';

/** Lines per page of the initial load: the API's largest page. */
const PAGE = 10_000;
/** Pages asked for at once: seqs are gapless, so page k starts after seq k * PAGE. */
const PARALLEL = 4;

export interface BuildLog {
  lines: LogLines;
  /** Bumped whenever lines were added (LogLines is mutated in place). */
  version: number;
  /** The stored lines up to the seq known on load are in. */
  loaded: boolean;
  /** The live tail has completed: the execution finished and every line is in. */
  complete: boolean;
  error: string | undefined;
}

function add(lines: LogLines, chunks: readonly LogChunkFieldsFragment[]): void {
  for (const c of chunks) lines.put(c.seq, c.stream, c.step ?? null, c.text);
}

/** Lines (afterSeq, upTo]: one page, then more from its last seq when the byte cap cut it short. */
async function range(id: string, afterSeq: number, upTo: number): Promise<LogChunkFieldsFragment[]> {
  const out: LogChunkFieldsFragment[] = [];
  let after = afterSeq;
  while (after < upTo) {
    const { execution } = await kiln.request(ExecutionLogPageDocument, { id, afterSeq: after, limit: Math.min(PAGE, upTo - after) });
    const page = execution?.logs ?? [];
    if (page.length === 0) break;
    out.push(...page);
    after = page.at(-1)!.seq;
  }
  return out;
}

/**
 * An execution's whole log: the lines stored when the page opened, fetched as pages in parallel
 * and added in seq order, then the live tail from the last of them over graphql-ws (gapless
 * replay: nothing missed or repeated between the two). Live lines are added once per animation
 * frame, however fast they come.
 */
export function useBuildLog(id: string, lastSeqOnLoad: number | undefined): BuildLog {
  const [lines] = useState(() => new LogLines());
  const [version, setVersion] = useState(0);
  const [loaded, setLoaded] = useState(false);
  const [complete, setComplete] = useState(false);
  const [error, setError] = useState<string>();
  const frame = useRef(0);

  useEffect(() => {
    if (lastSeqOnLoad === undefined) return;
    let stopped = false;
    let live: AsyncGenerator<unknown> | undefined;
    const flush = () => {
      frame.current = 0;
      if (lines.settle()) setVersion(lines.version);
    };
    const schedule = () => {
      if (frame.current === 0) frame.current = requestAnimationFrame(flush);
    };
    void (async () => {
      try {
        const ranges: Array<[number, number]> = [];
        for (let after = 0; after < lastSeqOnLoad; after += PAGE) ranges.push([after, Math.min(after + PAGE, lastSeqOnLoad)]);
        const pages: Array<Promise<LogChunkFieldsFragment[]>> = [];
        let started = 0;
        const start = () => {
          if (started < ranges.length) {
            const [a, b] = ranges[started++]!;
            pages.push(range(id, a, b));
          }
        };
        for (let i = 0; i < PARALLEL; i++) start();
        for (let k = 0; k < ranges.length; k++) {
          const page = await pages[k]!;
          if (stopped) return;
          start();
          add(lines, page);
          if (k === 0 || k === ranges.length - 1) flush();
        }
        flush();
        setLoaded(true);
        const generator = kiln.subscribe(ExecutionLogsDocument, { executionId: id, afterSeq: lines.count });
        live = generator;
        for await (const { executionLogs } of generator) {
          if (stopped) return;
          lines.put(executionLogs.seq, executionLogs.stream, executionLogs.step ?? null, executionLogs.text);
          schedule();
        }
        flush();
        setComplete(true);
      } catch (err) {
        if (!stopped) setError(errorText(err));
      }
    })();
    return () => {
      stopped = true;
      void live?.return(undefined);
      if (frame.current !== 0) cancelAnimationFrame(frame.current);
      frame.current = 0;
    };
  }, [id, lastSeqOnLoad, lines]);

  return { lines, version, loaded, complete, error };
}
