import type pg from 'pg';
import type { EngineGate } from '../runner/engineGate.js';
import { installationId } from '../runner/installation.js';
import { Reaper } from '../runner/reaper.js';
import type { RunnerSettings } from '../runner/settings.js';
import type { ContainerBackend } from '../runner/types.js';
import type { SecretBox } from '../secrets/SecretBox.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import { CancelListener } from './cancelListener.js';
import type { RunnerServices } from './run/RunDeps.js';
import { RunRegistry } from './run/RunRegistry.js';

/** The runner services of a worker process, running. */
export interface RunnerRuntime {
  services: RunnerServices;
  reaper: Reaper;
  stop(): Promise<void>;
}

/**
 * Starts what the runner needs in a worker process, before the worker takes any execution: the
 * registry of the runs it holds, the cancel listener, and the orphan reaper, which sweeps once now
 * (containers left by a dead worker go before new ones start) and then every `settings.reapIntervalMs`.
 */
export async function startRunnerRuntime(opts: {
  pool: pg.Pool;
  /** The listener's own connection (LISTEN needs a session of its own). */
  connection: pg.ClientConfig;
  backend: ContainerBackend;
  store: ArtifactStore;
  secretBox: SecretBox;
  settings: Readonly<RunnerSettings>;
  workerId: string;
  log: (message: string) => void;
  /** The engine's state, started: the reaper sweeps only while it is up, and at once when it is back. */
  gate?: EngineGate;
}): Promise<RunnerRuntime> {
  const installation = await installationId(opts.pool);
  const runs = new RunRegistry();
  // Cancel requests from any API process reach the runs held here.
  const cancels = new CancelListener(opts.pool, opts.connection, opts.log, runs);
  await cancels.start();
  const reaper = new Reaper({
    backend: opts.backend,
    pool: opts.pool,
    installationId: installation,
    workerId: opts.workerId,
    runsHere: (id) => runs.has(id),
    log: opts.log,
    engineUp: opts.gate ? () => opts.gate!.up : undefined,
  });
  const sweep = (what: string) =>
    reaper.sweep().catch((err: Error) => {
      // A worker without Docker must still start (and report not ready); the next sweep retries.
      opts.log(`reaper: ${what} failed: ${err.message}`);
    });
  // Without an engine (the gate has said so, once) a sweep could only fail: it waits for the engine.
  if (opts.gate?.up !== false) await sweep('first sweep');
  const unwatch = opts.gate?.onChange((up) => void (up && sweep('sweep after the engine came back'))) ?? (() => {});
  reaper.start(opts.settings.reapIntervalMs);
  return {
    services: { settings: opts.settings, store: opts.store, secretBox: opts.secretBox, runs, installationId: installation },
    reaper,
    async stop() {
      unwatch();
      await reaper.stop();
      await cancels.stop();
    },
  };
}
