import { ExecutionLogsDocument, type LogChunkFieldsFragment } from '@kiln/sdk';
import { useEffect, useRef, useState } from 'react';
import { errorText, kiln } from '../api';
import { LogLines } from './logLines';

/** Times the live tail is resumed in a row after its socket drops, before the page says it stopped. */
const MAX_RESUMES = 5;

export interface BuildLog {
  lines: LogLines;
  /** Bumped whenever lines were added (LogLines is mutated in place). */
  version: number;
  /** The lines stored when the page opened are in. */
  loaded: boolean;
  /** The live tail has completed: the execution finished and every line is in. */
  complete: boolean;
  error: string | undefined;
}

/** A line of `GET /api/v1/executions/:id/log.ndjson`. */
interface StoredLine {
  seq: number;
  stream: LogChunkFieldsFragment['stream'];
  step: number | null;
  text: string;
}

/**
 * Adds every stored line of the log to `lines` as its bytes arrive (the NDJSON route streams
 * what Postgres or the archive formats, far faster than pages of GraphQL objects), calling
 * `progress` after each chunk of the response.
 */
async function loadStored(id: string, lines: LogLines, progress: () => void, signal: AbortSignal): Promise<void> {
  const res = await fetch(`/api/v1/executions/${encodeURIComponent(id)}/log.ndjson`, { credentials: 'same-origin', signal });
  if (!res.ok || res.body === null) throw new Error(`the log answered HTTP ${res.status}`);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let rest = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const text = rest + value;
    const end = text.lastIndexOf('\n');
    if (end < 0) {
      rest = text;
      continue;
    }
    // One JSON.parse per chunk of the response rather than one per line (JSON never holds a raw newline).
    const body = text.slice(0, end).replace(/\n+/g, ',').replace(/^,/, '');
    if (body.length > 0) for (const l of JSON.parse(`[${body}]`) as StoredLine[]) lines.put(l.seq, l.stream, l.step, l.text);
    rest = text.slice(end + 1);
    progress();
  }
  if (rest.trim().length > 0) {
    const l = JSON.parse(rest) as StoredLine;
    lines.put(l.seq, l.stream, l.step, l.text);
  }
}

/**
 * An execution's whole log: the lines stored when the page opened, streamed in seq order, then
 * the live tail from the last of them over graphql-ws (gapless replay: nothing missed or repeated
 * between the two). Live lines are added once per animation frame, however fast they come.
 */
export function useBuildLog(id: string, enabled: boolean): BuildLog {
  const [lines] = useState(() => new LogLines());
  const [version, setVersion] = useState(0);
  const [loaded, setLoaded] = useState(false);
  const [complete, setComplete] = useState(false);
  const [error, setError] = useState<string>();
  const frame = useRef(0);

  useEffect(() => {
    if (!enabled) return;
    let stopped = false;
    const abort = new AbortController();
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
        let last = 0;
        await loadStored(id, lines, () => {
          // The first screen shows as soon as it is in; then a render every ~200 ms while loading.
          if (lines.count === 0 || performance.now() - last > 200) {
            last = performance.now();
            flush();
          }
        }, abort.signal);
        if (stopped) return;
        flush();
        setLoaded(true);
        // A dropped socket resumes from the last line held: replay repeats and misses nothing.
        for (let attempt = 0; ; attempt++) {
          try {
            const generator = kiln.subscribe(ExecutionLogsDocument, { executionId: id, afterSeq: lines.count });
            live = generator;
            for await (const { executionLogs } of generator) {
              if (stopped) return;
              attempt = 0;
              lines.put(executionLogs.seq, executionLogs.stream, executionLogs.step ?? null, executionLogs.text);
              schedule();
            }
            break;
          } catch (err) {
            if (stopped || attempt >= MAX_RESUMES) throw err;
            flush();
            await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
            if (stopped) return;
          }
        }
        flush();
        setComplete(true);
      } catch (err) {
        if (!stopped) setError(errorText(err));
      }
    })();
    return () => {
      stopped = true;
      abort.abort();
      void live?.return(undefined);
      if (frame.current !== 0) cancelAnimationFrame(frame.current);
      frame.current = 0;
    };
  }, [id, enabled, lines]);

  return { lines, version, loaded, complete, error };
}
