/**
 * The seam between Kiln and whatever runs containers. The lifecycle is explicit:
 * prepare (image + create) -> start -> exec each step (streaming output) -> destroy.
 * `destroy` is idempotent and safe to call at any point, including after a failed prepare.
 */

export type OutputStream = 'STDOUT' | 'STDERR';

/** What a container needs, already resolved from an ExecutionPlan. */
export interface ContainerSpec {
  image: string;
  /** Environment for the container (steps may add their own). */
  env: Record<string, string>;
  /** Labels that let a reaper find the container: kiln, kiln.job, kiln.execution, kiln.attempt, kiln.worker. */
  labels: Record<string, string>;
  network: 'none' | 'bridge';
  workdir: string;
  memoryBytes: number | null;
  cpus: number | null;
  /** Optional container name; unique per attempt. */
  name?: string;
}

export interface ContainerHandle {
  id: string;
}

export interface StepCommand {
  /** Run as `sh -c <command>` in `workdir`. */
  command: string;
  env: Record<string, string>;
  workdir: string;
}

/** Raw output as the engine delivers it; line splitting happens in src/logs. */
export type OutputSink = (stream: OutputStream, data: Buffer) => void;

export interface ContainerBackend {
  /** Makes sure the image is there and creates the container (not started). */
  prepare(spec: ContainerSpec): Promise<ContainerHandle>;
  start(handle: ContainerHandle): Promise<void>;
  /**
   * Runs one step and resolves with its exit code once its output has been fully delivered
   * to `sink`. Aborting `signal` stops waiting (the caller then destroys the container).
   */
  exec(handle: ContainerHandle, step: StepCommand, sink: OutputSink, signal?: AbortSignal): Promise<{ exitCode: number }>;
  /** Stops (if running) and removes the container; never throws for a missing container. */
  destroy(handle: ContainerHandle): Promise<void>;
  /** Throws when the engine cannot be reached. */
  ping(): Promise<void>;
}
