import type Dockerode from 'dockerode';
import type { ContainerSpec } from '../types.js';

/**
 * The container's main process. It only keeps the container alive: steps run beside it
 * through exec. It exits 0 on SIGTERM (forwarded by docker-init, which is PID 1 and reaps
 * the orphans steps leave behind), so `docker stop` is quick. `sleep` in the background
 * with `wait` lets the trap run at once instead of after the sleep.
 */
export const IDLE_COMMAND: readonly string[] = [
  '/bin/sh',
  '-c',
  'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done',
];

/** Upper bound on processes (and threads) in one container: stops fork bombs. */
export const PIDS_LIMIT = 512;

/** `KEY=value` list, the shape the Engine API wants for environments. */
export function toEnvList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([key, value]) => `${key}=${value}`);
}

/**
 * Translates a ContainerSpec into Engine API create options. Pure: no I/O, the same spec
 * always yields the same options, so the whole security posture is unit-tested here.
 *
 * Invariants: never privileged, every capability dropped, no privilege gain through setuid
 * binaries, a process limit, no host path mounted, no swap beyond the memory limit, and
 * the network exactly as the spec says (`none` unless the server allowed `bridge`).
 */
export function toCreateOptions(spec: ContainerSpec): Dockerode.ContainerCreateOptions {
  const hostConfig: Dockerode.HostConfig = {
    NetworkMode: spec.network,
    Init: true,
    Privileged: false,
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges'],
    PidsLimit: PIDS_LIMIT,
    IpcMode: 'private',
    Binds: [],
    Mounts: [],
    AutoRemove: false,
    RestartPolicy: { Name: 'no' },
  };
  if (spec.memoryBytes !== null) {
    hostConfig.Memory = spec.memoryBytes;
    hostConfig.MemorySwap = spec.memoryBytes;
  }
  if (spec.cpus !== null) {
    hostConfig.NanoCpus = Math.round(spec.cpus * 1e9);
  }

  const options: Dockerode.ContainerCreateOptions = {
    Image: spec.image,
    // An explicit entrypoint also discards the image's own ENTRYPOINT and CMD.
    Entrypoint: [...IDLE_COMMAND],
    Cmd: [],
    Env: toEnvList(spec.env),
    Labels: { ...spec.labels },
    WorkingDir: spec.workdir,
    Tty: false,
    OpenStdin: false,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    StopSignal: 'SIGTERM',
    HostConfig: hostConfig,
  };
  // dockerode copies every option into the query string, so an absent name must be absent,
  // not `name=` (which the engine would reject or treat as a name).
  if (spec.name !== undefined) options.name = spec.name;
  return options;
}
