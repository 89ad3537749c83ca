import type pg from 'pg';
import type { ContainerBackend, ContainerHandle, StepResult } from '../runner/types.js';
import { LogWriter, type LogFlushListener } from '../logs/LogWriter.js';
import { SecretMasker } from '../logs/mask.js';
import type { Log } from '../ops/log.js';
import type { RunMetrics } from '../ops/metrics.js';
import { OutputBudget, StepOutput } from '../logs/stepOutput.js';
import { ArtifactError, collectArtifacts } from '../runner/artifacts.js';
import { recordArtifacts } from '../executions/artifacts.js';
import { containerSpecFor } from '../runner/containerSpec.js';
import { stepFailure } from '../runner/failures.js';
import { atPostgresBoundary } from '../runner/infrastructure.js';
import { removeUntilGone } from '../runner/removal.js';
import { handBack } from '../executions/handBack.js';
import { settlesWithin, withTimeout } from '../ops/timeout.js';
import { checkoutInto, redactUrl } from '../runner/workspace.js';
import { loadExecutionSecrets } from '../secrets/executionSecrets.js';
import { claimExecution } from '../executions/claim.js';
import { finishExecution, type Outcome } from '../executions/finish.js';
import { StepMarks } from './stepMarks.js';
import { type ClaimedExecution } from '../executions/fence.js';
import type { EngineGate } from '../runner/engineGate.js';
import { judgeInfrastructureFailure, witnessEngine } from './run/infrastructureFailure.js';
import type { LeaseKeeper } from './leases.js';
import type { RunnerServices } from './runnerRuntime.js';
import { errorEnding } from './run/endings.js';

/** What running an execution needs from the worker process. */
export interface RunnerDeps {
  pool: pg.Pool;
  backend: ContainerBackend;
  workerId: string;
  onLogFlush?: LogFlushListener;
  /** Container settings, the runs held here, secrets and the artifact store. */
  runner: RunnerServices;
  /** Its `leaseMs` is the claim's lease; the keeper renews it (see RunRegistry). */
  leases: LeaseKeeper;
  /** For retries queued when a run fails. */
  defaultImage: string;
  retryBaseMs: number;
  /** The process log (Kiln's own, not the execution's): start, outcome, with the execution's ids. */
  log?: Log;
  /** Fire lateness, durations, log bytes. */
  metrics?: RunMetrics;
  /** Asked when a run breaks on the infrastructure: was the engine there? (see infrastructureVerdict). */
  gate?: EngineGate;
}

/**
 * How long a run whose claim was lost keeps trying to remove its container (the reaper goes on
 * after that). While the claim is held, a run tries as long as it takes, or until its shutdown deadline.
 */
const LOST_REMOVAL_MS = 60_000;
/** How long the end of a run waits for its last log lines to be stored (Postgres may be what broke). */
const LOG_CLOSE_WAIT_MS = 10_000;

type FinalStatus = 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'TIMED_OUT';

/**
 * Runs one execution end to end: claim it, start its container, run each step with `sh -c`
 * in order, record every line and each step's exit code, then record the outcome and queue the
 * log's archive. A non-zero step is a FAILED execution, not an error: this returns normally.
 * The container is destroyed on every path.
 */
export async function runExecution(deps: RunnerDeps, executionId: string): Promise<void> {
  const claim = await claimExecution(deps.pool, executionId, deps.workerId, deps.leases.leaseMs);
  // Busy: another execution of its job runs; it stays QUEUED and a dispatcher claims it later.
  // Gone: cancelled before it started, already run, or deleted.
  if (claim.kind !== 'claimed') return;
  await runClaimed(deps, claim.execution);
}

/** Runs an execution this worker has claimed (see runExecution), to its end. */
export async function runClaimed(deps: RunnerDeps, claimed: ClaimedExecution): Promise<void> {
  const { plan } = claimed;
  const startedAt = Date.now();
  const ids = { executionId: claimed.id, jobId: claimed.jobId, attempt: claimed.attempt, workerId: deps.workerId };
  if (claimed.fireLatenessSec !== null) deps.metrics?.fireLateness(claimed.fireLatenessSec);
  deps.log?.(`execution ${claimed.id} started: #${claimed.number}, attempt ${claimed.attempt}, image ${plan.image}`, ids);
  // Secrets are known once loaded (inside the try below); Kiln's own lines are masked from then on.
  let masker: SecretMasker | null = null;
  const log = new LogWriter(deps.pool, claimed.id, claimed.lastSeq, {
    onFlush: deps.onLogFlush,
    fence: claimed,
    mask: (text) => (masker ? masker.line(text) : text),
    onStored: deps.metrics ? (bytes) => deps.metrics!.logBytes(bytes) : undefined,
  });
  const stop = new AbortController();
  let stopReason: 'TIMED_OUT' | 'CANCELLED' | 'LOST' | null = null;
  let stopMessage = '';
  let handle: ContainerHandle | null = null;
  const halt = (reason: 'TIMED_OUT' | 'CANCELLED' | 'LOST', message: string) => {
    if (stopReason === null) [stopReason, stopMessage] = [reason, message];
    stop.abort(new Error(reason));
    // A timeout or a cancel stops the step gracefully (SIGTERM, grace, SIGKILL: see
    // ContainerBackend.exec); a lost claim gets no grace, the next attempt may start any moment.
    if (reason === 'LOST' && handle !== null) void deps.backend.destroy(handle).catch(() => {});
  };
  // `timeout` counts from the start of the run, not from the queue.
  const deadline = setTimeout(() => halt('TIMED_OUT', `timed out after ${plan.timeoutMs} ms`), plan.timeoutMs);
  // From here on the claim is renewed, and a cancel or a lost claim stops the run (see RunRegistry).
  const runs = deps.runner.runs;
  runs.hold(claimed, (reason, message) => halt(reason, message));
  let completed = false;
  let infraError: string | null = null;
  let engineWasDown: (() => Promise<boolean>) | null = null;
  let outcome: { status: FinalStatus; exitCode: number | null; error: string | null } = { status: 'SUCCEEDED', exitCode: 0, error: null };
  // Postgres failing under the run is the infrastructure's failure, told by where the error comes
  // from (see atPostgresBoundary), never by what it says.
  const pool = atPostgresBoundary(deps.pool);
  const runDeps: RunnerDeps = { ...deps, pool };
  const marks = new StepMarks(pool, claimed, (err) =>
    deps.log?.(`execution ${claimed.id}: step changes not stored yet (${err.message}); the finish stores them`, { ...ids, level: 'warn' }),
  );
  try {
    log.system(`execution #${claimed.number} (attempt ${claimed.attempt}) on worker ${deps.workerId}, image ${plan.image}`);
    const secrets = await loadExecutionSecrets(pool, deps.runner.secretBox, claimed.id, plan.secrets);
    masker = SecretMasker.of(secrets.values());
    const spec = containerSpecFor(
      plan,
      { executionId: claimed.id, jobId: claimed.jobId, attempt: claimed.attempt, workerId: deps.workerId, installationId: deps.runner.installationId },
      deps.runner.settings,
      startedAt,
    );
    if (claimed.attempt > 1) {
      // An earlier attempt's worker died; its container may still run a step on this engine.
      // Never two at once: it goes before this attempt starts.
      for (const c of await deps.backend.list({ 'kiln.execution': claimed.id })) {
        if (Number(c.labels['kiln.attempt']) < claimed.attempt) await deps.backend.destroy({ id: c.id });
      }
    }
    handle = await deps.backend.prepare(spec, stop.signal);
    stop.signal.throwIfAborted(); // stopped while the image was pulled: never start it
    await deps.backend.start(handle);
    if (plan.repository !== null) {
      log.system(`checking out ${redactUrl(plan.repository.url)} at ${plan.repository.ref} into ${plan.workdir}`);
      const commit = await checkoutInto(deps.backend, handle, plan.workdir, plan.repository, {
        protocols: deps.runner.settings.gitProtocols,
        signal: stop.signal,
      });
      log.system(`checked out commit ${commit}`);
    }
    const io: StepIo = { marks, masker, budget: new OutputBudget(deps.runner.settings.maxLogBytes), secretEnv: Object.fromEntries(secrets) };
    for (const step of plan.steps) {
      if (stop.signal.aborted) break;
      const result = await runStep(runDeps, handle, claimed, step, log, io, stop.signal, (ms) => halt('TIMED_OUT', `step "${step.name}" timed out after ${ms} ms`));
      if (result === null) break; // stopped by timeout or cancel
      if (result.exitCode !== 0) {
        outcome = { status: 'FAILED', exitCode: result.exitCode, error: stepFailure(step.name, result, spec.memoryBytes) };
        break;
      }
    }
    // Artifacts are kept after a failed step too (test reports, core files), not after a stop.
    if (plan.artifacts.length > 0 && !stop.signal.aborted) {
      try {
        const stored = await collectArtifacts(deps.backend, handle, deps.runner.store, plan.artifacts, {
          executionId: claimed.id,
          workdir: plan.workdir,
          maxBytes: deps.runner.settings.maxArtifactBytes,
          log: (message) => log.system(message),
          signal: stop.signal,
        });
        await recordArtifacts(pool, claimed, stored);
      } catch (err) {
        // FAILED (see RUN_ERRORS), but the steps did end: the container is idle.
        if (!(err instanceof ArtifactError)) throw err;
        log.system(`error: ${err.message}`);
        if (outcome.status === 'SUCCEEDED') outcome = { status: 'FAILED', exitCode: null, error: err.message };
      }
    }
    completed = true;
  } catch (err) {
    // How an error ends the run is in RUN_ERRORS; a stopped run ends as its stop says.
    const ending = errorEnding(err, stop.signal.aborted);
    if (ending !== 'STOPPED') {
      const message = err instanceof Error ? err.message : String(err);
      log.system(`error: ${message}`);
      outcome = { status: 'FAILED', exitCode: null, error: message };
      if (ending === 'HANDED_BACK') [infraError, engineWasDown] = [message, witnessEngine(deps.gate)];
    }
  } finally {
    clearTimeout(deadline);
  }

  // From here on: the container goes (confirmed, see removeContainer), the log is flushed and
  // closed, then the outcome is recorded or the execution handed back, and only then is the claim
  // released. A container that cannot be confirmed gone blocks every hand-back: attempt N + 1 must
  // never start while attempt N's container may still run.
  let released = false;
  const release = (containerGone: boolean) => {
    if (released) return;
    released = true;
    runs.release(claimed, containerGone);
  };
  const removeContainer = async (h: ContainerHandle): Promise<boolean> => {
    const since = Date.now();
    const removal = await removeUntilGone(deps.backend, h, {
      labels: { 'kiln.execution': claimed.id },
      deadline: () => runs.shutdownDeadline,
      // While the claim is held (and renewed) the tries go on as long as it takes; a lost claim is
      // the next attempt's already, and the reaper takes over after a while.
      giveUp: () =>
        !runs.holds(claimed) && Date.now() - since >= LOST_REMOVAL_MS ? `the claim is no longer held and ${LOST_REMOVAL_MS} ms have passed` : null,
      log: (m) => deps.log?.(`execution ${claimed.id}: ${m}`, { ...ids, level: 'warn' }),
    });
    if (removal.gone) return true;
    deps.log?.(
      `execution ${claimed.id}: its container ${h.id.slice(0, 12)} could not be confirmed removed after ${removal.tries} tries ` +
        `(${removal.lastError}); stopped trying: ${removal.reason}. The execution is NOT handed back: its lease expires, ` +
        `the leader re-queues it, and the reaper and the next attempt's cleanup remove the container`,
      { ...ids, level: 'error' },
    );
    return false;
  };
  /** Flushes what the run wrote (bounded: Postgres may be what broke), then stops the writer. */
  const closeLog = async (flush: boolean): Promise<Error | null> => {
    const unstored = flush ? await withTimeout(log.flush(), LOG_CLOSE_WAIT_MS, 'storing the last log lines').then(() => null, (err: Error) => err) : null;
    await settlesWithin(log.close(), LOG_CLOSE_WAIT_MS);
    return unstored;
  };
  try {
    // A run that was stopped, or broke, may still have processes: they die before its status is
    // final. A run whose steps all ended has only its idle process left: its container goes right
    // after the status is recorded, so reporting the outcome does not wait for the engine.
    const destroyLater = completed && !stop.signal.aborted && handle !== null;
    let containerGone = handle === null;
    if (handle !== null && !destroyLater) containerGone = await removeContainer(handle);
    if (stopReason === 'LOST' || (handle !== null && !destroyLater && !containerGone)) {
      // (A claim lost just after the steps ended still has its container to remove.)
      if (handle !== null && destroyLater) containerGone = await removeContainer(handle);
      // Fenced, or being handed back by a shutdown (which needs the container gone), or the container
      // may still run: no outcome is written. The lines so far are kept while the claim holds.
      await closeLog(runs.holds(claimed));
      release(containerGone);
      deps.log?.(`execution ${claimed.id} stopped without an outcome: ${stopReason === 'LOST' ? stopMessage : 'its container could not be confirmed removed'}`, {
        ...ids,
        level: 'warn',
      });
      return;
    }
    if (stopReason !== null) {
      outcome = { status: stopReason, exitCode: null, error: stopMessage };
      log.system(stopMessage);
    } else {
      log.system(outcome.status === 'SUCCEEDED' ? 'execution succeeded' : `execution failed: ${outcome.error}`);
    }
    // `error` is shown by the API too: no secret in it either.
    if (masker !== null && outcome.error !== null) outcome = { ...outcome, error: (masker as SecretMasker).line(outcome.error) };
    // A deleted execution's lines go nowhere without an error; a failed write is Postgres failing.
    const unstored = await closeLog(true);
    if (unstored !== null && stopReason === null) infraError ??= `log lines could not be stored: ${unstored.message}`;
    const verdict = infraError !== null && stopReason === null ? await judgeInfrastructureFailure(deps.pool, claimed, (await engineWasDown?.()) ?? false) : null;
    if (verdict?.action === 'hand back') {
      // Not the build's failure: once the container is confirmed gone, the execution goes to its next
      // attempt (if Postgres cannot take that now, the lease expires and the leader re-queues it).
      if (destroyLater && !(await removeContainer(handle!))) {
        release(false);
        return;
      }
      const reason = `infrastructure error: ${infraError} (${verdict.engineDown ? 'the engine was not reachable: this attempt does not count; ' : ''}next attempt in ${verdict.delayMs / 1000} s)`;
      const requeued = await handBack(deps.pool, [claimed], reason, deps.log ?? (() => {}), {
        delayMs: verdict.delayMs, engineDown: verdict.engineDown,
      }).catch((err: Error) => {
        deps.log?.(`execution ${claimed.id}: handing it back failed (${err.message}); its lease expires and the leader re-queues it`, { ...ids, level: 'warn' });
        return [];
      });
      deps.metrics?.executionsRequeued?.('infrastructure', requeued.length);
      release(true);
      return;
    }
    let recorded = false;
    try {
      recorded = await finishExecution(deps.pool, claimed, outcome as Outcome, { defaultImage: deps.defaultImage, baseMs: deps.retryBaseMs, log: deps.log, retries: claimed.retries }, await marks.take());
      if (recorded) {
        const seconds = (Date.now() - startedAt) / 1000;
        deps.metrics?.executionFinished(outcome.status, seconds);
        deps.log?.(`execution ${claimed.id} ${outcome.status} in ${seconds.toFixed(1)} s${outcome.error ? `: ${outcome.error}` : ''}`, {
          ...ids, status: outcome.status, durationMs: Math.round(seconds * 1000),
          ...(outcome.status === 'SUCCEEDED' ? {} : { level: 'warn' as const }),
        });
      }
    } finally {
      // Recorded, the claim has nothing left to guard; otherwise it is released once the container is gone.
      if (recorded || !destroyLater) release(true);
      if (destroyLater) release(await removeContainer(handle!));
    }
  } finally {
    await settlesWithin(log.close(), LOG_CLOSE_WAIT_MS);
    release(false); // only on an unexpected error: the lease then expires
    runs.forget(claimed); // until now the reaper knew the container as this process's own
  }
}

/** What every step of one execution shares on the way in and out of the container. */
interface StepIo {
  marks: StepMarks;
  masker: SecretMasker | null;
  budget: OutputBudget;
  /** The job's secrets, given to each step's process only (not to the container's config). */
  secretEnv: Record<string, string>;
}

/** Runs one step; resolves with how it ended, or null when the run was stopped meanwhile. */
async function runStep(
  deps: RunnerDeps,
  handle: ContainerHandle,
  claimed: ClaimedExecution,
  step: ClaimedExecution['plan']['steps'][number],
  log: LogWriter,
  io: StepIo,
  runSignal: AbortSignal,
  onStepTimeout: (ms: number) => void,
): Promise<StepResult | null> {
  io.marks.started(step.index);
  log.system(`step ${step.index + 1}/${claimed.plan.steps.length}: ${step.name}`, step.index);
  const output = new StepOutput(log, step.index, io.masker, io.budget);
  const signals = [runSignal];
  if (step.timeoutMs !== null) signals.push(AbortSignal.timeout(step.timeoutMs));
  const signal = AbortSignal.any(signals);
  const stepStarted = Date.now();
  let result: StepResult;
  try {
    result = await deps.backend.exec(
      handle,
      { command: step.run, env: { ...step.env, ...io.secretEnv }, workdir: claimed.plan.workdir },
      (stream, data) => output.push(stream, data),
      signal,
    );
  } catch (err) {
    output.end();
    if (!signal.aborted) throw err;
    io.marks.ended(step.index, 'FAILED', null);
    if (!runSignal.aborted) {
      // Only the step's own timeout fired: the execution ends TIMED_OUT all the same.
      onStepTimeout(step.timeoutMs ?? 0);
    }
    return null;
  }
  output.end();
  const { exitCode } = result;
  deps.metrics?.stepFinished(exitCode === 0 ? 'SUCCEEDED' : 'FAILED', (Date.now() - stepStarted) / 1000);
  io.marks.ended(step.index, exitCode === 0 ? 'SUCCEEDED' : 'FAILED', exitCode);
  if (result.oomKilled) log.system(`step "${step.name}" was killed by the kernel: out of memory`, step.index);
  log.system(`step "${step.name}" exited with code ${exitCode}`, step.index);
  return result;
}
