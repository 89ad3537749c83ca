import type pg from 'pg';
import type { ClaimedExecution } from '../../executions/fence.js';
import { finishExecution, type Outcome } from '../../executions/finish.js';
import { handBack as handBackAttempts } from '../../executions/handBack.js';
import type { LogChunkFields } from '../../entities/LogChunk.js';
import { LogWriter } from '../../logs/LogWriter.js';
import { insertLines } from '../../logs/storeLines.js';
import { SecretMasker } from '../../logs/mask.js';
import { ServiceOutput } from '../../logs/serviceOutput.js';
import type { LogFields } from '../../util/log.js';
import { settlesWithin, withTimeout } from '../../util/timeout.js';
import { containerConfigFor } from '../../runner/containerConfig.js';
import { atPostgresBoundary, runErrorText } from '../../runner/infrastructure.js';
import { DEFAULT_WRITABLE_MAX_BYTES, writableDirs } from '../../runner/docker/convert.js';
import { removeUntilGone } from '../../runner/removal.js';
import { ExecutionServices } from '../../runner/services/ExecutionServices.js';
import type { ContainerConfig, ContainerHandle } from '../../runner/types.js';
import type { ExecutionPlan } from '../../jobfile/types.js';
import { decideEnding, type ContainerState, type Ending, type RunFacts, type Stop } from './decideEnding.js';
import { errorEnding } from './endings.js';
import { keepArtifacts } from './keepArtifacts.js';
import { pullAccessFor } from './pullAccess.js';
import { judgeInfrastructureFailure, witnessEngine, type InfrastructureVerdict } from './infrastructureFailure.js';
import type { RunDeps } from './RunDeps.js';
import type { RunRegistry, StopReason } from './RunRegistry.js';
import { RunCache } from './RunCache.js';
import { checkOutRepository, openRunSecrets, removeEarlierAttempts } from './runStart.js';
import { runSteps } from './runSteps.js';
import { StepMarks } from './StepMarks.js';

/**
 * How long a run whose claim was lost keeps trying to remove its container (the reaper goes on
 * after that). While the claim is held, a run tries as long as it takes, or until its shutdown deadline.
 */
const LOST_REMOVAL_MS = 60_000;
/** How long the end of a run waits for its last log lines to be stored (Postgres may be what broke). */
const LOG_CLOSE_WAIT_MS = 10_000;

/**
 * One run: one attempt of a claimed execution, in this process. Its phases, in order: prepare
 * (secrets, the container, the checkout), the cache's restore, runSteps, collectArtifacts, the
 * cache's save (RunCache), then settle, which ends the run as decideEnding says: record the
 * outcome, hand the execution back, or abandon it to its lease's expiry. Every path removes the
 * container, and the run stays in the RunRegistry (so the reaper leaves its container alone)
 * until it is over.
 *
 * Two logs: `buildLog` is the execution's own log, the lines its users read (masked, numbered,
 * stored under the claim); `processLog` is Kiln's log of this process, for operators.
 */
export class ExecutionRun {
  private readonly plan: ExecutionPlan;
  private readonly startedAt = Date.now();
  private readonly buildLog: LogWriter;
  /** Postgres as the phases use it: a lost connection is an InfrastructureError (see atPostgresBoundary). */
  private readonly pool: pg.Pool;
  private readonly marks: StepMarks;
  private readonly stopping = new AbortController();
  /** Known once the secrets are loaded; Kiln's own lines are masked from then on. */
  private masker: SecretMasker | null = null;
  /** The job's secrets, given to each step's process only (not to the container's config). */
  private secretEnv: Record<string, string> = {};
  /** The private key of an ssh repository (`repository.ssh_key`), for the checkout container only. */
  private deployKey: string | null = null;
  private memoryBytes: number | null = null;
  /** The container's writable directories and their size, named when a step fills one. */
  private writable: { dirs: string[]; maxBytes: number } | null = null;
  private handle: ContainerHandle | null = null;
  /** The job's `services:` of this attempt, once started (docs/design.md#services). */
  private services: ExecutionServices | null = null;
  // The facts settle decides by (see RunFacts).
  private container: ContainerState = 'none';
  private stepsEnded = false;
  private stop: Stop | null = null;
  private result: Outcome = { status: 'SUCCEEDED', exitCode: 0, error: null };
  private infraError: string | null = null;
  private lastLines: RunFacts['lastLines'] = null;
  /** The build log's last lines, taken from its writer to be stored with the outcome (see storeLastLines). */
  private tail: LogChunkFields[] = [];
  private verdict: InfrastructureVerdict | null = null;
  /** Set when the infrastructure broke the run: whether the engine was found unreachable then (see witnessEngine). */
  private engineWasDown: (() => Promise<boolean>) | null = null;

  constructor(
    private readonly deps: RunDeps,
    private readonly claimed: ClaimedExecution,
    /** Told once the steps are over and the outcome is being written: the run's slot is free (docs/design.md#dispatch). */
    private readonly onRecording: () => void = () => {},
  ) {
    this.plan = claimed.plan;
    this.pool = atPostgresBoundary(deps.pool);
    this.marks = new StepMarks(this.pool, claimed, (err) =>
      this.processLog(`execution ${claimed.id}: step changes not stored yet (${err.message}); the finish stores them`, { level: 'warn' }),
    );
    const metrics = deps.metrics;
    this.buildLog = new LogWriter(deps.pool, claimed.id, claimed.lastSeq, {
      onFlush: deps.onLogFlush,
      fence: claimed,
      mask: (text) => this.masked(text),
      onStored: metrics ? (bytes) => metrics.logBytes(bytes) : undefined,
    });
  }

  private get runs(): RunRegistry {
    return this.deps.runner.runs;
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  /**
   * Runs the execution to its ending: its container, each step with `sh -c` in order, every line
   * and each step's exit code recorded, then the ending (see settle). A non-zero step is a FAILED
   * execution, not an error: this returns normally.
   */
  async run(): Promise<void> {
    const { claimed, plan } = this;
    if (claimed.fireLatenessSec !== null) this.deps.metrics?.fireLateness(claimed.fireLatenessSec);
    this.processLog(`execution ${claimed.id} started: #${claimed.number}, attempt ${claimed.attempt}, image ${plan.image}`);
    // `timeout` counts from the start of the run, not from the queue.
    const deadline = setTimeout(() => this.halt('TIMED_OUT', `timed out after ${plan.timeoutMs} ms`), plan.timeoutMs);
    // From here on the claim is renewed, and a cancel or a lost claim stops the run (see RunRegistry).
    this.runs.hold(claimed, (reason, message) => this.halt(reason, message));
    try {
      try {
        const handle = await this.prepare();
        const cache = new RunCache(this.deps, this.pool, claimed, (m) => this.buildLog.system(m), this.stopping.signal);
        await cache.restore(handle);
        await this.runSteps(handle);
        await this.collectArtifacts(handle);
        await cache.save(handle, this.result.status === 'SUCCEEDED');
        this.stepsEnded = true;
      } catch (err) {
        this.broke(err);
      } finally {
        clearTimeout(deadline);
        // Before the outcome: a finished execution has no service left (the reaper has the rest).
        await this.services?.destroy().catch((err: Error) => this.processLog(err.message, { level: 'warn' }));
      }
      await this.settle();
    } finally {
      await settlesWithin(this.buildLog.close(), LOG_CLOSE_WAIT_MS);
      // Not released by now (an unexpected error), the claim is left to expire.
      this.runs.forget(claimed);
    }
  }

  /** Stops the run; the first stop before the last lines are stored decides how it ends. */
  private halt(reason: StopReason, message: string): void {
    if (this.stop === null && this.lastLines === null) this.stop = { reason, message };
    this.stopping.abort(new Error(reason));
    // A timeout or a cancel stops the step gracefully (SIGTERM, grace, SIGKILL: see
    // ContainerBackend.exec); a lost claim gets no grace, the next attempt may start any moment.
    if (reason === 'LOST' && this.handle !== null) void this.deps.backend.destroy(this.handle).catch(() => {});
  }

  /** Secrets, the container (after any earlier attempt's is gone), its start, the checkout. */
  private async prepare(): Promise<ContainerHandle> {
    const { deps, claimed, plan } = this;
    this.buildLog.system(`execution #${claimed.number} (attempt ${claimed.attempt}) on worker ${deps.workerId}, image ${plan.image}`);
    const secrets = await openRunSecrets(this.pool, deps.runner.secretBox, claimed.owner, plan);
    this.deployKey = secrets.deployKey;
    this.masker = secrets.masker;
    this.secretEnv = secrets.env;
    const spec = containerConfigFor(
      plan,
      { executionId: claimed.id, jobId: claimed.jobId, attempt: claimed.attempt, workerId: deps.workerId, installationId: deps.runner.installationId },
      deps.runner.settings,
      this.startedAt,
    );
    this.memoryBytes = spec.memoryBytes;
    this.writable = { dirs: writableDirs(spec), maxBytes: spec.writableMaxBytes ?? DEFAULT_WRITABLE_MAX_BYTES };
    await removeEarlierAttempts(deps.backend, claimed.id, claimed.attempt);
    if (plan.services?.length) await this.startServices(spec);
    const access = pullAccessFor(this.pool, deps.runner.secretBox, claimed.owner, plan.image, deps.runner.settings);
    const handle = await deps.backend.prepare(spec, this.stopping.signal, access);
    this.handle = handle;
    this.container = 'running';
    this.stopping.signal.throwIfAborted(); // stopped while the image was pulled: never start it
    await deps.backend.start(handle);
    const say = (text: string) => this.buildLog.system(text);
    await checkOutRepository(deps.backend, { handle, config: spec }, plan, this.deployKey, deps.runner.settings, this.stopping.signal, say);
    await this.services?.ready(this.stopping.signal);
    return handle;
  }

  /** The services on the attempt's own network, which the step container then joins instead of `none`. */
  private async startServices(spec: ContainerConfig): Promise<void> {
    const { deps, claimed, plan } = this;
    const settings = deps.runner.settings;
    this.services = new ExecutionServices({
      backend: deps.backend, step: spec, executionId: claimed.id, attempt: claimed.attempt, services: plan.services!,
      probeImage: settings.gitImage,
      system: (text) => this.buildLog.system(text),
      outputOf: (name) => new ServiceOutput(this.buildLog, name, this.masker, settings.maxLogBytes),
      accessFor: (image) => pullAccessFor(this.pool, deps.runner.secretBox, claimed.owner, image, settings),
    });
    spec.extraHosts = await this.services.start(this.stopping.signal);
    spec.network = this.services.network;
  }

  /** Each step in order, until one fails or the run is stopped (see runSteps). */
  private async runSteps(handle: ContainerHandle): Promise<void> {
    const { deps } = this;
    const failed = await runSteps(
      {
        backend: deps.backend, metrics: deps.metrics, plan: this.plan, buildLog: this.buildLog, marks: this.marks,
        masker: this.masker, secretEnv: this.secretEnv, writable: this.writable, memoryBytes: this.memoryBytes,
        maxLogBytes: deps.runner.settings.maxLogBytes, stopping: this.stopping.signal,
        halt: (reason, message) => this.halt(reason, message),
      },
      handle,
    );
    if (failed !== null) this.result = failed;
  }

  /** Kept after a failed step too (test reports, core files), not after a stop. */
  private async collectArtifacts(handle: ContainerHandle): Promise<void> {
    if (this.plan.artifacts.length === 0 || this.stopped) return;
    const log = (message: string) => this.buildLog.system(message);
    const error = await keepArtifacts(this.deps, this.pool, this.claimed, handle, log, this.stopping.signal);
    // FAILED (see RUN_ERRORS), but the steps did end: the container is idle.
    if (error !== null && this.result.status === 'SUCCEEDED') this.result = { status: 'FAILED', exitCode: null, error: this.masked(error) };
  }

  /** An error cut the phases short: RUN_ERRORS (endings.ts) says how it ends the run. */
  private broke(err: unknown): void {
    const ending = errorEnding(err, this.stopped);
    if (ending === 'STOPPED') return; // the stop decides
    // Masked here: it also becomes the hand-back reason (executions.error, Kiln's own log).
    const message = this.masked(runErrorText(err, this.deps.backend.description));
    this.buildLog.system(`error: ${message}`);
    this.result = { status: 'FAILED', exitCode: null, error: message };
    if (ending === 'HANDED_BACK') [this.infraError, this.engineWasDown] = [message, witnessEngine(this.deps.gate)];
  }

  private facts(): RunFacts {
    const { container, stepsEnded, stop, result, infraError, lastLines, verdict } = this;
    return { container, stepsEnded, stop, result, infraError, lastLines, verdict };
  }

  /**
   * Ends the run as decideEnding says, after doing what it asks for first. Each ending releases the
   * claim saying whether the container is confirmed gone: only then may shutdown hand it back.
   */
  private async settle(): Promise<void> {
    for (;;) {
      const next = decideEnding(this.facts());
      switch (next.kind) {
        case 'removeContainer':
          await this.removeContainer();
          continue;
        case 'storeLastLines':
          await this.storeLastLines(next.outcome);
          continue;
        case 'judgeInfrastructure':
          this.verdict = await judgeInfrastructureFailure(this.deps.pool, this.claimed, (await this.engineWasDown?.()) ?? false);
          continue;
        case 'abandon':
          return this.abandon(next.why);
        case 'handBack':
          return this.handBack(next);
        case 'record':
          return this.record(next.outcome, next.removeContainerAfter);
      }
    }
  }

  /**
   * Tries to remove the container until it is confirmed gone: while the claim is held (and renewed)
   * as long as it takes or until the shutdown deadline; a lost claim is the next attempt's already,
   * and the reaper takes over after LOST_REMOVAL_MS. Resolves with whether it is gone.
   */
  private async removeContainer(): Promise<boolean> {
    const { deps, claimed, handle, runs } = this;
    if (handle === null) return true;
    const since = Date.now();
    const removal = await removeUntilGone(deps.backend, handle, {
      labels: { 'kiln.execution': claimed.id },
      deadline: () => runs.shutdownDeadline,
      giveUp: () =>
        !runs.holds(claimed) && Date.now() - since >= LOST_REMOVAL_MS ? `the claim is no longer held and ${LOST_REMOVAL_MS} ms have passed` : null,
      log: (m) => this.processLog(`execution ${claimed.id}: ${m}`, { level: 'warn' }),
    });
    this.container = removal.gone ? 'gone' : 'stuck';
    if (!removal.gone) {
      this.processLog(
        `execution ${claimed.id}: its container ${handle.id.slice(0, 12)} could not be confirmed removed after ${removal.tries} tries ` +
          `(${removal.lastError}); stopped trying: ${removal.reason}. The execution is NOT handed back: its lease expires, ` +
          `the leader re-queues it, and the reaper and the next attempt's cleanup remove the container`,
        { level: 'error' },
      );
    }
    return removal.gone;
  }

  /**
   * Writes the outcome as the build log's last line and stores what is left of the log, but for its
   * last small batch: that goes with the outcome (record), one commit instead of two, or is stored
   * on its own before any other ending (storeTail).
   */
  private async storeLastLines(outcome: Outcome): Promise<void> {
    this.buildLog.system(lastLine(outcome));
    // `error` is shown by the API too: no secret in it either.
    const shown = outcome.error !== null ? { ...outcome, error: this.masked(outcome.error) } : outcome;
    // A deleted execution's lines go nowhere without an error; a failed write is Postgres failing.
    const unstored = await withTimeout(this.buildLog.takeTail(), LOG_CLOSE_WAIT_MS, 'storing the last log lines').then(
      (tail) => {
        this.tail = tail;
        return null;
      },
      (err: Error) => err,
    );
    await settlesWithin(this.buildLog.close(), LOG_CLOSE_WAIT_MS);
    this.lastLines = { outcome: shown, unstored: unstored ? this.masked(unstored.message) : null };
  }

  /** Stores the taken last lines on their own, under the claim (an ending other than record). */
  private async storeTail(): Promise<void> {
    const tail = this.tail.splice(0);
    if (tail.length === 0) return;
    const stored = await insertLines(this.deps.pool, this.claimed.id, this.claimed)(tail).catch((err: Error) => {
      this.processLog(`execution ${this.claimed.id}: its last log lines could not be stored: ${err.message}`, { level: 'warn' });
      return false;
    });
    if (stored) this.buildLog.reportStored(tail);
  }

  /** Stores what the run wrote if `flush` (bounded: Postgres may be what broke), then stops the writer. */
  private async closeBuildLog(flush: boolean): Promise<Error | null> {
    const unstored = flush
      ? await withTimeout(this.buildLog.flush(), LOG_CLOSE_WAIT_MS, 'storing the last log lines').then(
          () => null,
          (err: Error) => err,
        )
      : null;
    await settlesWithin(this.buildLog.close(), LOG_CLOSE_WAIT_MS);
    return unstored;
  }

  /** No outcome (see Ending); the lines so far are kept while the claim holds (a shutdown's hand-back). */
  private async abandon(why: string): Promise<void> {
    if (this.runs.holds(this.claimed)) await this.storeTail();
    await this.closeBuildLog(this.runs.holds(this.claimed));
    this.runs.release(this.claimed, this.container === 'none' || this.container === 'gone');
    this.processLog(`execution ${this.claimed.id} stopped without an outcome: ${why}`, { level: 'warn' });
  }

  /** To the next attempt; if Postgres cannot take that now, the lease expires and the leader re-queues it. */
  private async handBack({ reason, delayMs, engineDown }: Extract<Ending, { kind: 'handBack' }>): Promise<void> {
    const { deps, claimed } = this;
    await this.storeTail();
    // Every text that leaves the worker is masked (docs/design.md#masking); the reason's parts already are.
    const requeued = await handBackAttempts(deps.pool, [claimed], this.masked(reason), deps.log ?? (() => {}), { delayMs, engineDown }).catch((err: Error) => {
      this.processLog(`execution ${claimed.id}: handing it back failed (${err.message}); its lease expires and the leader re-queues it`, { level: 'warn' });
      return [];
    });
    deps.metrics?.executionsRequeued?.('infrastructure', requeued.length);
    this.runs.release(claimed, true);
  }

  /** Writes the outcome under the claim; an idle container goes after it, so the outcome does not wait for the engine. */
  private async record(outcome: Outcome, removeContainerAfter: boolean): Promise<void> {
    const { deps, claimed } = this;
    let recorded = false;
    try {
      const retry = { defaultImage: deps.defaultImage, baseMs: deps.retryBaseMs, log: deps.log };
      // The step changes and log lines not written yet go with the outcome.
      const tail = this.tail.splice(0);
      this.onRecording();
      recorded = await finishExecution(deps.pool, claimed, outcome, retry, await this.marks.take(), tail);
      if (recorded) {
        this.buildLog.reportStored(tail);
        const seconds = (Date.now() - this.startedAt) / 1000;
        deps.metrics?.executionFinished(outcome.status, seconds);
        this.processLog(`execution ${claimed.id} ${outcome.status} in ${seconds.toFixed(1)} s${outcome.error ? `: ${outcome.error}` : ''}`, {
          status: outcome.status,
          durationMs: Math.round(seconds * 1000),
          ...(outcome.status === 'SUCCEEDED' ? {} : { level: 'warn' as const }),
        });
      }
    } finally {
      // Recorded, the claim has nothing left to guard; otherwise it is released once the container is gone.
      if (recorded || !removeContainerAfter) this.runs.release(claimed, true);
      if (removeContainerAfter) this.runs.release(claimed, await this.removeContainer());
    }
  }

  /** `text` with the run's secrets masked (before they are loaded there is nothing to mask). */
  private masked(text: string): string {
    return this.masker ? this.masker.line(text) : text;
  }

  /** Kiln's own log of this process (not the build's), with the execution's ids; masked like the build's. */
  private processLog(message: string, fields: LogFields = {}): void {
    const { claimed } = this;
    this.deps.log?.(this.masked(message), { executionId: claimed.id, jobId: claimed.jobId, attempt: claimed.attempt, workerId: this.deps.workerId, ...fields });
  }
}

/** The build log's last line for `outcome`. */
function lastLine(outcome: Outcome): string {
  if (outcome.status === 'SUCCEEDED') return 'execution succeeded';
  if (outcome.status === 'FAILED') return `execution failed: ${outcome.error}`;
  return outcome.error ?? outcome.status; // a stop's message
}
