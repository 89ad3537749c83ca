import type { Outcome } from '../../executions/finish.js';
import type { ExecutionPlan } from '../../jobfile/types.js';
import type { LogWriter } from '../../logs/LogWriter.js';
import type { SecretMasker } from '../../logs/mask.js';
import { OutputBudget, StepOutput } from '../../logs/stepOutput.js';
import type { RunMetrics } from '../../ops/metrics.js';
import { stepFailure } from '../../runner/failures.js';
import type { ContainerBackend, ContainerHandle, StepResult } from '../../runner/types.js';
import { NoSpaceWatch, noSpaceMessage } from '../../runner/writableSpace.js';
import type { StopReason } from './RunRegistry.js';
import type { StepMarks } from './StepMarks.js';

type Step = ExecutionPlan['steps'][number];

/** What the steps of one run need from it (see ExecutionRun). */
export interface StepsOfRun {
  backend: ContainerBackend;
  metrics?: RunMetrics;
  plan: ExecutionPlan;
  buildLog: LogWriter;
  marks: StepMarks;
  masker: SecretMasker | null;
  /** The job's secrets, given to each step's process only. */
  secretEnv: Record<string, string>;
  writable: { dirs: string[]; maxBytes: number } | null;
  memoryBytes: number | null;
  maxLogBytes: number | null;
  /** Aborted when the run is stopped (timeout, cancel, lost claim). */
  stopping: AbortSignal;
  /** Stops the whole run (a step's own timeout ends the execution TIMED_OUT). */
  halt(reason: StopReason, message: string): void;
}

/**
 * Each step in order, with `sh -c` in the workdir, until one fails or the run is stopped.
 * Resolves with the failed step's outcome, or null when every step succeeded or the run was
 * stopped (the stop decides the ending then).
 */
export async function runSteps(run: StepsOfRun, handle: ContainerHandle): Promise<Outcome | null> {
  const budget = new OutputBudget(run.maxLogBytes);
  for (const step of run.plan.steps) {
    if (run.stopping.aborted) break;
    const result = await runStep(run, handle, step, budget);
    if (result === null) break; // stopped by a timeout or a cancel
    if (result.exitCode !== 0) return { status: 'FAILED', exitCode: result.exitCode, error: stepFailure(step.name, result, run.memoryBytes) };
  }
  return null;
}

/** Runs one step; resolves with how it ended, or null when the run was stopped meanwhile. */
async function runStep(run: StepsOfRun, handle: ContainerHandle, step: Step, budget: OutputBudget): Promise<StepResult | null> {
  const { plan, buildLog } = run;
  run.marks.started(step.index);
  buildLog.system(`step ${step.index + 1}/${plan.steps.length}: ${step.name}`, step.index);
  const output = new StepOutput(buildLog, step.index, run.masker, budget);
  const signals = [run.stopping];
  if (step.timeoutMs !== null) signals.push(AbortSignal.timeout(step.timeoutMs));
  const signal = AbortSignal.any(signals);
  const stepStarted = Date.now();
  const noSpace = new NoSpaceWatch();
  let result: StepResult;
  try {
    result = await run.backend.exec(
      handle,
      { command: step.run, env: { ...step.env, ...run.secretEnv }, workdir: plan.workdir },
      (stream, data) => {
        noSpace.observe(data);
        return output.push(stream, data);
      },
      signal,
    );
  } catch (err) {
    output.end();
    if (!signal.aborted) throw err;
    run.marks.ended(step.index, 'FAILED', null);
    // Only the step's own timeout fired: the execution ends TIMED_OUT all the same.
    if (!run.stopping.aborted) run.halt('TIMED_OUT', `step "${step.name}" timed out after ${step.timeoutMs ?? 0} ms`);
    return null;
  }
  output.end();
  const { exitCode } = result;
  run.metrics?.stepFinished(exitCode === 0 ? 'SUCCEEDED' : 'FAILED', (Date.now() - stepStarted) / 1000);
  run.marks.ended(step.index, exitCode === 0 ? 'SUCCEEDED' : 'FAILED', exitCode);
  if (result.oomKilled) buildLog.system(`step "${step.name}" was killed by the kernel: out of memory`, step.index);
  if (exitCode !== 0 && noSpace.seen && run.writable !== null) {
    buildLog.system(noSpaceMessage(step.name, run.writable.dirs, run.writable.maxBytes), step.index);
  }
  buildLog.system(`step "${step.name}" exited with code ${exitCode}`, step.index);
  return result;
}
