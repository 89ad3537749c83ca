import type pg from 'pg';
import type { LogFlushListener } from '../../logs/LogWriter.js';
import type { Log } from '../../util/log.js';
import type { RunMetrics } from '../../ops/metrics.js';
import type { EngineGate } from '../../runner/engineGate.js';
import type { RunnerSettings } from '../../runner/settings.js';
import type { ContainerBackend } from '../../runner/types.js';
import type { SecretBox } from '../../secrets/SecretBox.js';
import type { ArtifactStore } from '../../storage/ArtifactStore.js';
import type { RunRegistry } from './RunRegistry.js';

/** What running an execution needs beyond the claim: the worker process's runner services. */
export interface RunnerServices {
  settings: Readonly<RunnerSettings>;
  /** Where artifacts go. */
  store: ArtifactStore;
  /** Opens the owner's secrets for the build. */
  secretBox: SecretBox;
  /** The runs this process holds: what leases renew, cancels stop, the reaper spares and shutdown hands back. */
  runs: RunRegistry;
  /** Label value that scopes the reaper to this installation's containers. */
  installationId: string;
}

/** What a run (ExecutionRun) needs from the worker process. */
export interface RunDeps {
  pool: pg.Pool;
  backend: ContainerBackend;
  workerId: string;
  onLogFlush?: LogFlushListener;
  /** Container settings, the runs held here, secrets and the artifact store. */
  runner: RunnerServices;
  /** For retries queued when a run fails. */
  defaultImage: string;
  retryBaseMs: number;
  /** The process log (Kiln's own, not the build's): start, outcome, with the execution's ids. */
  log?: Log;
  /** Fire lateness, durations, log bytes. */
  metrics?: RunMetrics;
  /** Asked when a run breaks on the infrastructure: was the engine there? (see infrastructureVerdict). */
  gate?: EngineGate;
}
