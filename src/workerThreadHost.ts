import { Worker } from 'node:worker_threads';
import type { StopRequest } from './ops/shutdown.js';
import type { Log } from './util/log.js';

/** From the main thread to the worker thread: stop, with this grace (a later, shorter one cuts it). */
export interface ThreadOrder {
  stop: number;
}

/** From the worker thread to the main thread. */
export type ThreadMessage = { kind: 'started' } | { kind: 'failed'; message: string };

/** The worker role of `kiln start`, running on its own thread (see workerThread.ts). */
export interface WorkerThread {
  /** Resolves with the thread's exit code once it has ended, for whatever reason. */
  exited: Promise<number>;
}

/**
 * Starts the worker role of `kiln start` on a thread of its own, on the database the API uses,
 * and resolves once it runs. Stop requests (signals) are passed on to it as they come; the
 * thread ends by itself once stopped. Rejects if it fails to start.
 */
export async function startWorkerThread(opts: { databaseUrl: string; stopRequest: StopRequest; log: Log }): Promise<WorkerThread> {
  const fromSource = import.meta.url.endsWith('.ts');
  const thread = new Worker(new URL(`./workerThread.${fromSource ? 'ts' : 'js'}`, import.meta.url), {
    workerData: { databaseUrl: opts.databaseUrl },
  });
  const exited = new Promise<number>((resolve) => thread.once('exit', resolve));
  thread.on('error', (err) => opts.log(`worker thread: ${err.message}`, { level: 'error', err }));
  const unwatch = opts.stopRequest.watch((graceMs) => thread.postMessage({ stop: graceMs } satisfies ThreadOrder));
  void exited.then(unwatch);
  await new Promise<void>((resolve, reject) => {
    thread.on('message', (message: ThreadMessage) => {
      if (message.kind === 'started') resolve();
      else reject(new Error(`the worker thread failed to start: ${message.message}`));
    });
    void exited.then((code) => reject(new Error(`the worker thread exited with code ${code} during start-up`)));
  });
  return { exited };
}
