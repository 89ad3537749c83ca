import 'reflect-metadata';
import { parentPort, workerData } from 'node:worker_threads';
import { startKiln } from './app.js';
import { loadConfig } from './config.js';
import { createLogger, logDestination, pinoLog } from './ops/pinoLog.js';
import { StartInterrupted, StopRequest } from './ops/shutdown.js';
import type { ThreadMessage, ThreadOrder } from './workerThreadHost.js';

/**
 * The worker role of `kiln start` (scheduler, runner, lease renewal), on a thread of its own so
 * that no API request delays a lease renewal or a fire time (docs/design.md#off-the-loop). The
 * main thread runs the API, owns the signals and sends the stop orders; this thread stops itself
 * with process.exit, which in a worker thread ends the thread only.
 */
const port = parentPort!;
const send = (message: ThreadMessage) => port.postMessage(message);
const request = new StopRequest();
port.on('message', (order: ThreadOrder) => request.request(order.stop));

const config = loadConfig({ ...process.env, DATABASE_URL: (workerData as { databaseUrl: string }).databaseUrl });
const log = pinoLog(createLogger(config.logLevel, logDestination(config.logFormat)).child({ role: 'worker', thread: 'worker' }));

try {
  const kiln = await startKiln({ config, api: false, worker: true, log, stopRequest: request });
  const engine = kiln.engine;
  if (engine) {
    send({ kind: 'engine', up: engine.up });
    engine.onChange((up) => send({ kind: 'engine', up }));
  }
  send({ kind: 'started' });
  let stopping: Promise<void> | null = null;
  request.watch((graceMs) => {
    const stop = kiln.stop({ graceMs });
    if (stopping !== null) return;
    stopping = stop;
    stop.then(
      () => process.exit(0),
      (err: Error) => {
        log(`shutdown failed: ${err.message}`, { level: 'error', err });
        process.exit(1);
      },
    );
  });
} catch (err) {
  if (err instanceof StartInterrupted) process.exit(0);
  send({ kind: 'failed', message: (err as Error).message });
  process.exit(1);
}
