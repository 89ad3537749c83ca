import type { Task } from 'graphile-worker';
import { runExecution, type RunnerDeps } from '../worker/runExecution.js';

/** graphile-worker task: runs one execution (payload `{ executionId }`). */
export function runExecutionTask(deps: RunnerDeps): Task {
  return async (payload) => {
    const { executionId } = payload as { executionId: string };
    await runExecution(deps, executionId);
  };
}
