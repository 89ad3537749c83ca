import type Dockerode from 'dockerode';
import type { ContainerConfig } from '../types.js';

/** Default upper bound on processes (and threads) in one container: stops fork bombs. */
export const PIDS_LIMIT = 512;
/** Default open files per process; an engine started by hand (as .ci/run does) may allow little more. */
export const NOFILE_LIMIT = 8192;
/** Default lifetime of a container whose spec names none: a day. */
export const DEFAULT_MAX_LIFETIME_SEC = 24 * 3600;
/** Always writable, besides the workdir: where tools put temporary files. */
export const TMP_DIR = '/tmp';
/**
 * Makes containers the preferred victims of a host-wide out-of-memory kill, before the worker
 * and the engine (the kernel's scale is -1000..1000).
 */
export const OOM_SCORE_ADJ = 500;

/**
 * The container's main process. It only keeps the container alive (steps run beside it through
 * exec) and it ignores SIGTERM, so that a graceful stop (`kill -TERM -1` from an exec) reaches
 * the steps and not it; SIG_IGN survives the `exec` into `sleep`. docker-init is PID 1 above it
 * and reaps the orphans steps leave behind. When `lifetimeSec` runs out the sleep ends, the
 * container stops and every process in it dies: the backstop that holds even when no worker is
 * left to stop it.
 */
export function idleCommand(lifetimeSec: number): string[] {
  return ['/bin/sh', '-c', 'trap "" TERM INT HUP; exec sleep "$0"', String(Math.max(1, Math.ceil(lifetimeSec)))];
}

/** `KEY=value` list, the shape the Engine API wants for environments. */
export function toEnvList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([key, value]) => `${key}=${value}`);
}

/** The directories a container may write to, each once, in a stable order: workdir, /tmp, extras. */
export function writableDirs(spec: Pick<ContainerConfig, 'workdir' | 'writablePaths'>): string[] {
  const dirs = [spec.workdir, TMP_DIR, ...(spec.writablePaths ?? [])].map((d) => d.replace(/\/+$/, '') || '/');
  return [...new Set(dirs)].filter((d) => d !== '/');
}

/**
 * A volume with an empty Source is anonymous: the engine creates it empty, fills it from the
 * image's own directory (so /root or /go keep their content) and `remove -v` deletes it. The
 * workdir's named volume, when there is one, is created by the first container that mounts it,
 * with that container's labels (so it is never without one that owns it).
 */
function volumeMount(spec: ContainerConfig, target: string): Dockerode.MountSettings {
  if (target !== spec.workdir.replace(/\/+$/, '') || spec.workdirVolume === undefined) return { Type: 'volume', Source: '', Target: target };
  const { name, fromImage } = spec.workdirVolume;
  return { Type: 'volume', Source: name, Target: target, VolumeOptions: { NoCopy: !fromImage, Labels: { ...spec.labels } } } as Dockerode.MountSettings;
}

function readOnlyBind(dir: string): Dockerode.MountSettings {
  return { Type: 'bind', Source: dir, Target: dir, ReadOnly: true, BindOptions: { Propagation: 'rprivate' } } as Dockerode.MountSettings;
}

/**
 * Translates a ContainerConfig into Engine API create options. Pure: no I/O, the same spec
 * always yields the same options, so the whole security posture is unit-tested here.
 *
 * Invariants, whatever the spec says: never privileged, every capability dropped, no privilege
 * gain through setuid binaries, the engine's default seccomp profile (never `unconfined`), a
 * process limit, ulimits, an init process, nothing from the host mounted (the writable
 * directories are volumes removed with the container; only a checkout container gets the
 * operator's KILN_GIT_LOCAL_ROOT, read-only), no swap beyond the memory limit, and the network
 * exactly as the spec says (`none` unless the server allowed `bridge`, or the operator's
 * checkout network for a checkout container).
 */
export function toCreateOptions(spec: ContainerConfig): Dockerode.ContainerCreateOptions {
  const nofile = spec.nofileLimit ?? NOFILE_LIMIT;
  const hostConfig: Dockerode.HostConfig = {
    NetworkMode: spec.network,
    Init: true,
    Privileged: false,
    CapDrop: ['ALL'],
    CapAdd: [],
    SecurityOpt: ['no-new-privileges'],
    PidsLimit: spec.pidsLimit ?? PIDS_LIMIT,
    Ulimits: [
      { Name: 'nofile', Soft: nofile, Hard: nofile },
      { Name: 'core', Soft: 0, Hard: 0 },
      ...(spec.maxFileBytes ? [{ Name: 'fsize', Soft: spec.maxFileBytes, Hard: spec.maxFileBytes }] : []),
    ],
    OomScoreAdj: OOM_SCORE_ADJ,
    IpcMode: 'private',
    ReadonlyRootfs: spec.readOnlyRootfs ?? false,
    Binds: [],
    Mounts: [...writableDirs(spec).map((target) => volumeMount(spec, target)), ...(spec.readOnlyHostDirs ?? []).map(readOnlyBind)],
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
    Entrypoint: idleCommand(spec.maxLifetimeSec ?? DEFAULT_MAX_LIFETIME_SEC),
    Cmd: [],
    Env: toEnvList(spec.env),
    Labels: { ...spec.labels },
    WorkingDir: spec.workdir,
    Tty: false,
    OpenStdin: false,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    StopSignal: 'SIGKILL',
    HostConfig: hostConfig,
  };
  if (spec.user) options.User = spec.user;
  // dockerode copies every option into the query string, so an absent name must be absent,
  // not `name=` (which the engine would reject or treat as a name).
  if (spec.name !== undefined) options.name = spec.name;
  return options;
}
