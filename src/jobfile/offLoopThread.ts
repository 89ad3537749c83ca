import { registerHooks } from 'node:module';
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

const { runOffLoopTask } = await import('./offLoopTasks.js');

/** Says when the task starts (its time budget counts from here, not from a thread's start-up), then runs it. */
export default function run({ task, started }: { task: import('./offLoopTasks.js').OffLoopTask; started: MessagePort }) {
  started.postMessage(null);
  started.close();
  return runOffLoopTask(task);
}
