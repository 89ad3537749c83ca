import type { StepResult } from './types.js';

/** `64m`, `2g`: how the job file writes sizes. */
export function formatBytes(bytes: number): string {
  if (bytes % 1024 ** 3 === 0) return `${bytes / 1024 ** 3}g`;
  if (bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2}m`;
  return `${bytes} bytes`;
}

/**
 * Why a step that exited non-zero failed, in the words the execution's `error` shows. An
 * out-of-memory kill says so (its exit code, 137, alone would read as "killed by someone").
 */
export function stepFailure(stepName: string, result: StepResult, memoryBytes: number | null): string {
  if (result.oomKilled) {
    const limit = memoryBytes === null ? '' : ` (memory limit ${formatBytes(memoryBytes)})`;
    return `step "${stepName}" ran out of memory: the kernel killed it${limit}, exit code ${result.exitCode}`;
  }
  return `step "${stepName}" exited with code ${result.exitCode}`;
}
