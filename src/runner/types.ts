import type { Readable } from 'node:stream';
import type { PullAccess } from './registryAccess.js';

/**
 * The seam between Kiln and whatever runs containers. The lifecycle is explicit:
 *
 *   prepare (image + create) -> start -> [copyIn] -> exec each step -> [copyOut] -> destroy
 *
 * `exec` is the stream-and-wait of one step: it delivers the step's output as it comes and
 * resolves with its exit status once the output is complete. `destroy` is idempotent and safe to
 * call at any point, including after a failed prepare; it kills whatever still runs.
 */

export type OutputStream = 'STDOUT' | 'STDERR';

/** What a container needs, already resolved from an ExecutionPlan and the server's settings. */
export interface ContainerConfig {
  image: string;
  /** Environment of the container (steps may add their own; secrets are given per step). */
  env: Record<string, string>;
  /** Labels that let a reaper find the container: kiln, kiln.job, kiln.execution, kiln.attempt, kiln.worker... */
  labels: Record<string, string>;
  /** `none`, `bridge`, or (for a checkout container only) the operator's checkout network. */
  network: string;
  workdir: string;
  /**
   * A named volume for `workdir` instead of an anonymous one, so that a checkout container can
   * share it (docs/design.md#sandboxed-checkout); it carries the container's labels and goes
   * with the last container that mounts it (see ContainerBackend.destroy).
   */
  workdirVolume?: { name: string };
  /** Host directories mounted read-only at the same path: only the checkout's KILN_GIT_LOCAL_ROOT. */
  readOnlyHostDirs?: string[];
  /** Largest file a process of the container may write (RLIMIT_FSIZE), null/absent = no limit. */
  maxFileBytes?: number | null;
  memoryBytes: number | null;
  cpus: number | null;
  /** Optional container name; unique per attempt. */
  name?: string;
  /** Most processes and threads in the container (default 512). */
  pidsLimit?: number;
  /** Open files per process (default 65536). */
  nofileLimit?: number;
  /** Root filesystem read-only; `workdir`, /tmp and `writablePaths` stay writable (default false). */
  readOnlyRootfs?: boolean;
  /** Writable directories besides `workdir` and /tmp, each a volume of its own. */
  writablePaths?: string[];
  /** Bytes each writable directory may hold (a tmpfs volume of that size); default 1 GiB. */
  writableMaxBytes?: number;
  /** User the steps run as; default the image's. */
  user?: string | null;
  /**
   * Seconds after which the container stops by itself even if no worker is left to stop it:
   * the backstop under the worker's own timeouts (default: a day).
   */
  maxLifetimeSec?: number;
  /**
   * A service container (docs/design.md#services): the image's own entrypoint runs, with
   * `command` as its arguments (null: the image's own), instead of Kiln's idle process.
   */
  service?: { command: string[] | null };
  /** `name:address` lines for /etc/hosts: how steps reach services by name on any engine. */
  extraHosts?: string[];
  /** Names the container has on a user-defined `network` (where the engine's DNS serves them). */
  networkAliases?: string[];
}

export interface ContainerHandle {
  id: string;
  /** The user the steps run as (`name`, `uid` or `uid:gid`; empty = root), when the backend knows it. */
  user?: string;
}

export interface StepCommand {
  /** Run as `sh -c <command>` in `workdir`. */
  command: string;
  env: Record<string, string>;
  workdir: string;
}

/** How a step ended. */
export interface StepResult {
  exitCode: number;
  /** The kernel killed a process of the container for lack of memory while the step ran. */
  oomKilled: boolean;
}

/**
 * Raw output as the engine delivers it; line splitting happens in src/logs. A returned promise
 * asks the backend to stop reading until it settles (back-pressure, so memory stays bounded).
 */
export type OutputSink = (stream: OutputStream, data: Buffer) => void | Promise<void>;

/** A container found by its labels. */
export interface ContainerSummary {
  id: string;
  labels: Record<string, string>;
  /** e.g. `running`, `exited`, `created`. */
  state: string;
  createdAt: Date;
}

export interface ContainerBackend {
  /** What runs the containers and where it is reached, for logs: `the Docker engine at unix:///var/run/docker.sock`. */
  readonly description: string;
  /**
   * Makes sure the image is there (pulling it when missing) and creates the container, not
   * started. Aborting `signal` abandons a pull. `access` says whose run it is and what they may
   * pull with (docs/design.md#local-privacy); without it, the backend's own configuration applies.
   */
  prepare(spec: ContainerConfig, signal?: AbortSignal, access?: PullAccess): Promise<ContainerHandle>;
  start(handle: ContainerHandle): Promise<void>;
  /** Unpacks a tar archive into directory `dir` of the container (the workspace checkout). */
  copyIn(handle: ContainerHandle, dir: string, tar: Readable): Promise<void>;
  /**
   * Runs one step and resolves once its output has been fully delivered to `sink`. Aborting
   * `signal` stops the step: SIGTERM to every process of the container, output still delivered
   * for the grace period, then SIGKILL; it then rejects with an AbortError.
   */
  exec(handle: ContainerHandle, step: StepCommand, sink: OutputSink, signal?: AbortSignal): Promise<StepResult>;
  /** A tar archive of `path` in the container, or null when there is no such path. */
  copyOut(handle: ContainerHandle, path: string): Promise<Readable | null>;
  /**
   * Stops (if running) and removes the container and its volumes (its named workdir volume too,
   * unless another container still mounts it); never throws for a missing container.
   */
  destroy(handle: ContainerHandle): Promise<void>;
  /** Every container, running or not, that carries all of `labels`. */
  list(labels: Record<string, string>): Promise<ContainerSummary[]>;
  /** Throws when the engine cannot be reached. */
  ping(): Promise<void>;
  /** Networks, addresses and logs for `services:`; absent on a backend that cannot run them. */
  readonly services?: ServiceEngine;
}

/** A container's state, as far as a service's readiness cares. */
export interface ContainerState {
  running: boolean;
  /** Once it stopped by itself. */
  exitCode: number | null;
}

/** What running services needs of an engine besides containers (docs/design.md#services). */
export interface ServiceEngine {
  /** Creates an internal network (no route outside it), labelled; an existing one of that name is reused. */
  createNetwork(name: string, labels: Record<string, string>): Promise<void>;
  /** Removes a network, first disconnecting what is left on it; never throws for a missing one. */
  removeNetwork(name: string): Promise<void>;
  /** The networks that carry all of `labels`. */
  listNetworks(labels: Record<string, string>): Promise<Array<{ name: string; labels: Record<string, string> }>>;
  /** The container's IPv4 address on `network`, or null when it has none. */
  addressOf(handle: ContainerHandle, network: string): Promise<string | null>;
  state(handle: ContainerHandle): Promise<ContainerState>;
  /** Delivers the container's output from its start until it stops or `signal` is aborted. */
  followLogs(handle: ContainerHandle, sink: OutputSink, signal: AbortSignal): Promise<void>;
}
