import type { Orm } from '../db/orm.js';
import { Execution, ExecutionStep, StepStatus } from '../entities/index.js';
import type { ExecutionStateEvent } from './channels.js';

/**
 * Steps that travel with an execution snapshot, so the `steps` field shows them as of the event
 * rather than as of whenever the field happens to be resolved.
 */
const snapshotSteps = new WeakMap<Execution, ExecutionStep[]>();

/** The steps captured with this execution snapshot, or undefined for an ordinary entity. */
export function stepsOfSnapshot(execution: Execution): ExecutionStep[] | undefined {
  return snapshotSteps.get(execution);
}

/**
 * The execution as the event saw it: the row and its steps read now (so every field is there)
 * with the event's own values laid over them. Rows read after the event's commit may already be
 * further on; the overlay puts status, attempt, exit codes and times back to the event's moment,
 * so a subscriber sees each change once, in order, however quickly the next one followed.
 * Returns null when the execution no longer exists.
 */
export async function loadExecutionSnapshot(orm: Orm, event: ExecutionStateEvent): Promise<Execution | null> {
  const em = orm.em.fork();
  const execution = await em.findOne(Execution, { id: event.executionId });
  if (execution === null) return null;
  const steps = await em.find(ExecutionStep, { execution: event.executionId }, { orderBy: { index: 'asc' } });
  execution.status = event.status;
  execution.attempt = event.attempt;
  execution.exitCode = event.exitCode;
  execution.startedAt = event.startedAt;
  execution.finishedAt = event.finishedAt;
  for (const step of steps) {
    const state = event.steps[step.index];
    if (state === undefined) continue;
    step.status = state.status;
    step.exitCode = state.exitCode;
    if (state.status === StepStatus.PENDING) {
      step.startedAt = null;
      step.finishedAt = null;
    } else if (state.status === StepStatus.RUNNING) {
      step.finishedAt = null;
    }
  }
  snapshotSteps.set(execution, steps);
  return execution;
}
