import {
  KilnApiError,
  KilnSocketClosedError,
  type KilnClient,
  ExecutionDocument,
  ExecutionLogsDocument,
  ExecutionUpdatedDocument,
  type ExecutionQuery,
  type LogChunkFieldsFragment,
} from '@kiln/sdk';
import { formatDuration, type Output } from './output.js';

/** The execution as the CLI reports it at the end. */
export type FinishedExecution = NonNullable<ExecutionQuery['execution']>;

/** Times a dropped socket is reopened while following, before giving up. */
const MAX_RESUMES = 5;

/** One log line as a person reads it: Kiln's own lines marked, stderr in red on a terminal. */
export function renderLogLine(out: Output, line: Pick<LogChunkFieldsFragment, 'stream' | 'text'>): string {
  if (line.stream === 'SYSTEM') return out.paint('dim', `[kiln] ${line.text}`);
  if (line.stream === 'STDERR') return out.paint('red', line.text);
  return line.text;
}

/** A socket that dropped (network, server restart) is worth reopening; a refusal is not. */
function transient(err: unknown): boolean {
  if (err instanceof KilnApiError) return false;
  if (err instanceof KilnSocketClosedError) return err.code !== 4403 && err.code !== 4401 && err.code !== 4400;
  return true;
}

/**
 * Prints an execution's log from the first line (or after `afterSeq`) until it ends, with a
 * spinner showing its status meanwhile, and returns how it finished. If the socket drops, it
 * resumes after the last line printed, so nothing is repeated or lost.
 */
export async function followExecution(client: KilnClient, out: Output, executionId: string, label: string, afterSeq = 0): Promise<FinishedExecution> {
  out.spin(`${label} queued`);
  // Status for the spinner only: the log stream alone decides when following is over.
  const watching = (async () => {
    for await (const { executionUpdated: e } of client.subscribe(ExecutionUpdatedDocument, { executionId })) {
      const running = e.steps.find((s) => s.status === 'RUNNING');
      out.spin(`${label} ${e.status.toLowerCase()}${running ? ` · step ${running.index + 1}/${e.steps.length} ${running.name}` : ''}`);
    }
  })().catch(() => {});

  let after = afterSeq;
  for (let resumes = 0; ; ) {
    try {
      for await (const { executionLogs: line } of client.subscribe(ExecutionLogsDocument, { executionId, afterSeq: after })) {
        out.line(renderLogLine(out, line));
        after = line.seq;
      }
      break;
    } catch (err) {
      if (!transient(err) || ++resumes > MAX_RESUMES) {
        out.stopSpinner();
        throw err;
      }
      out.note(out.paintErr('yellow', `connection lost (${(err as Error).message}); resuming after line ${after}`));
      await client.close();
      await new Promise((r) => setTimeout(r, 500 * resumes));
    }
  }
  const { execution } = await client.request(ExecutionDocument, { id: executionId });
  out.stopSpinner();
  await client.close();
  await watching;
  if (execution === null) throw new KilnApiError(`execution ${executionId} not found`, 'NOT_FOUND');
  return execution;
}

/** The closing line of a followed execution, on stderr: outcome, duration and reason. */
export function reportOutcome(out: Output, label: string, e: FinishedExecution): void {
  const ok = e.status === 'SUCCEEDED';
  const mark = ok ? out.paintErr('green', '✔') : out.paintErr('red', '✖');
  const why = !ok && e.error ? `: ${e.error}` : '';
  out.note(`${mark} ${label} ${out.paintErr(ok ? 'green' : 'red', e.status)} in ${formatDuration(e.durationMs)}${why}`);
}
