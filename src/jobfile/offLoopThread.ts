import { readlinkSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { setPriority } from 'node:os';
import type { MessagePort } from 'node:worker_threads';

/**
 * The entry of the off-loop threads (piscina loads it; see services/offLoop.ts). It imports
 * Kiln's modules only dynamically, after one thing: when it runs from the TypeScript sources
 * (tests), Node strips the types but keeps the `.js` of import specifiers, so a specifier that
 * does not resolve is retried as `.ts`. From dist/ the hook is never installed.
 */
if (import.meta.url.endsWith('.ts')) {
  registerHooks({
    resolve(specifier, context, nextResolve) {
      try {
        return nextResolve(specifier, context);
      } catch (error) {
        if (!specifier.startsWith('.') || !specifier.endsWith('.js')) throw error;
        return nextResolve(`${specifier.slice(0, -3)}.ts`, context);
      }
    },
  });
}

/**
 * Below the API's and the worker's threads in the CPU queue: on a busy 2-core machine a compile
 * then takes longer, rather than the API's answers and the lease renewals. On Linux a nice value
 * belongs to a thread, and setpriority(2) takes a thread id; elsewhere this does nothing.
 */
const OFF_LOOP_NICE = 10;
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (Number.isSafeInteger(tid) && tid > 0) setPriority(tid, OFF_LOOP_NICE);
} catch {
  // Not Linux, or not allowed: the thread runs at the process's priority.
}

const { runOffLoopTask } = await import('./offLoopTasks.js');

/** Says when the task starts (its time budget counts from here, not from a thread's start-up), then runs it. */
export default function run({ task, started }: { task: import('./offLoopTasks.js').OffLoopTask; started: MessagePort }) {
  started.postMessage(null);
  started.close();
  return runOffLoopTask(task);
}
