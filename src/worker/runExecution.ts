import type pg from 'pg';
import type { ContainerBackend, ContainerHandle, OutputStream } from '../runner/types.js';
import { LogStream } from '../entities/enums.js';
import { LineSplitter } from '../logs/lines.js';
import { LogWriter, type LogFlushListener } from '../logs/LogWriter.js';
import { claimExecution, finishExecution, markStep, pendingStop, type ClaimedExecution } from './executionState.js';

/** What running an execution needs from the worker process. */
export interface RunnerDeps {
  pool: pg.Pool;
  backend: ContainerBackend;
  workerId: string;
  /** How often a running execution checks for a cancel request. */
  cancelPollMs?: number;
  onLogFlush?: LogFlushListener;
}

type FinalStatus = 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'TIMED_OUT';

/**
 * Runs one execution end to end: claim it, start its container, run each step with `sh -c`
 * in order, record every line and each step's exit code, then record the outcome and queue the
 * log's archive. A non-zero step is a FAILED execution, not an error: this returns normally.
 * The container is destroyed on every path.
 */
export async function runExecution(deps: RunnerDeps, executionId: string): Promise<void> {
  const claimed = await claimExecution(deps.pool, executionId, deps.workerId);
  if (claimed === null) return; // cancelled before it started, already run, or deleted
  const { plan } = claimed;
  const log = new LogWriter(deps.pool, claimed.id, claimed.lastSeq, { onFlush: deps.onLogFlush });
  const stop = new AbortController();
  let stopReason: 'TIMED_OUT' | 'CANCELLED' | null = null;
  let stopMessage = '';
  const halt = (reason: 'TIMED_OUT' | 'CANCELLED', message: string) => {
    if (stopReason === null) [stopReason, stopMessage] = [reason, message];
    stop.abort(new Error(reason));
  };
  // `timeout` counts from the start of the run, not from the queue.
  const deadline = setTimeout(() => halt('TIMED_OUT', `timed out after ${plan.timeoutMs} ms`), plan.timeoutMs);
  const cancelWatch = setInterval(() => {
    pendingStop(deps.pool, claimed.id).then((s) => s && halt('CANCELLED', 'cancelled'), () => {});
  }, deps.cancelPollMs ?? 1000);

  let handle: ContainerHandle | null = null;
  let outcome: { status: FinalStatus; exitCode: number | null; error: string | null } = { status: 'SUCCEEDED', exitCode: 0, error: null };
  try {
    log.system(`execution #${claimed.number} (attempt ${claimed.attempt}) on worker ${deps.workerId}, image ${plan.image}`);
    handle = await deps.backend.prepare({
      image: plan.image,
      env: plan.env,
      labels: containerLabels(claimed, deps.workerId),
      network: plan.network,
      workdir: plan.workdir,
      memoryBytes: plan.resources.memoryBytes,
      cpus: plan.resources.cpus,
      name: `kiln-${claimed.id}-${claimed.attempt}`,
    });
    await deps.backend.start(handle);
    for (const step of plan.steps) {
      if (stop.signal.aborted) break;
      const exitCode = await runStep(deps, handle, claimed, step, log, stop.signal, (ms) => halt('TIMED_OUT', `step "${step.name}" timed out after ${ms} ms`));
      if (exitCode === null) break; // stopped by timeout or cancel
      if (exitCode !== 0) {
        outcome = { status: 'FAILED', exitCode, error: `step "${step.name}" exited with code ${exitCode}` };
        break;
      }
    }
  } catch (err) {
    if (!stop.signal.aborted) {
      const message = err instanceof Error ? err.message : String(err);
      log.system(`error: ${message}`);
      outcome = { status: 'FAILED', exitCode: null, error: message };
    }
  } finally {
    clearTimeout(deadline);
    clearInterval(cancelWatch);
    if (handle !== null) await deps.backend.destroy(handle).catch(() => {});
  }
  if (stopReason !== null) {
    outcome = { status: stopReason, exitCode: null, error: stopMessage };
    log.system(stopMessage);
  } else {
    log.system(outcome.status === 'SUCCEEDED' ? 'execution succeeded' : `execution failed: ${outcome.error}`);
  }
  await log.flush().catch(() => {}); // a deleted execution's lines have nowhere to go
  await finishExecution(deps.pool, claimed.id, outcome);
}

/** Runs one step; resolves with its exit code, or null when the run was stopped meanwhile. */
async function runStep(
  deps: RunnerDeps,
  handle: ContainerHandle,
  claimed: ClaimedExecution,
  step: ClaimedExecution['plan']['steps'][number],
  log: LogWriter,
  runSignal: AbortSignal,
  onStepTimeout: (ms: number) => void,
): Promise<number | null> {
  await markStep(deps.pool, claimed.id, step.index, { status: 'RUNNING' });
  log.system(`step ${step.index + 1}/${claimed.plan.steps.length}: ${step.name}`, step.index);
  const splitters: Record<OutputStream, LineSplitter> = { STDOUT: new LineSplitter(), STDERR: new LineSplitter() };
  const emit = (stream: OutputStream, lines: string[]) => {
    for (const line of lines) log.append(stream === 'STDOUT' ? LogStream.STDOUT : LogStream.STDERR, step.index, line);
  };
  const signals = [runSignal];
  if (step.timeoutMs !== null) signals.push(AbortSignal.timeout(step.timeoutMs));
  const signal = AbortSignal.any(signals);
  let exitCode: number;
  try {
    ({ exitCode } = await deps.backend.exec(
      handle,
      { command: step.run, env: step.env, workdir: claimed.plan.workdir },
      (stream, data) => emit(stream, splitters[stream].push(data)),
      signal,
    ));
  } catch (err) {
    emit('STDOUT', splitters.STDOUT.flush());
    emit('STDERR', splitters.STDERR.flush());
    if (!signal.aborted) throw err;
    await markStep(deps.pool, claimed.id, step.index, { status: 'FAILED', exitCode: null });
    if (!runSignal.aborted) {
      // Only the step's own timeout fired: the execution ends TIMED_OUT all the same.
      onStepTimeout(step.timeoutMs ?? 0);
    }
    return null;
  }
  emit('STDOUT', splitters.STDOUT.flush());
  emit('STDERR', splitters.STDERR.flush());
  await markStep(deps.pool, claimed.id, step.index, { status: exitCode === 0 ? 'SUCCEEDED' : 'FAILED', exitCode });
  log.system(`step "${step.name}" exited with code ${exitCode}`, step.index);
  return exitCode;
}

/** Labels that let a reaper find the container and tell whose it is (DESIGN.md section 5). */
export function containerLabels(claimed: Pick<ClaimedExecution, 'id' | 'jobId' | 'attempt'>, workerId: string): Record<string, string> {
  return {
    kiln: 'true',
    'kiln.execution': claimed.id,
    'kiln.job': claimed.jobId,
    'kiln.attempt': String(claimed.attempt),
    'kiln.worker': workerId,
  };
}
