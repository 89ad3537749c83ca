import type Dockerode from 'dockerode';
import type { ContainerConfig } from '../types.js';

/** Default upper bound on processes (and threads) in one container: stops fork bombs. */
export const PIDS_LIMIT = 512;
/** Default open files per process; an engine started by hand (as .ci/run does) may allow little more. */
export const NOFILE_LIMIT = 8192;
/** Default lifetime of a container whose spec names none: a day. */
export const DEFAULT_MAX_LIFETIME_SEC = 24 * 3600;
/** Default size of each writable directory, for a spec that names none. */
export const DEFAULT_WRITABLE_MAX_BYTES = 1024 ** 3;
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
 * The mount of one writable directory: an anonymous volume of the `local` driver backed by a tmpfs
 * of `maxBytes` (docs/design.md#quotas). Overlay2 can cap a container's writable layer only on
 * xfs with project quotas, which engines rarely have; a tmpfs is capped on any engine, its pages
 * count against the container's memory cgroup, and nothing reaches the engine's disk. A volume
 * rather than a plain tmpfs mount: the engine mounts it in its own namespace, so copying in (the
 * checkout) and out (artifacts) sees its content, which it does not for a container's tmpfs.
 */
export function writableMount(target: string, maxBytes: number): Dockerode.MountSettings {
  return {
    Type: 'volume',
    Source: '',
    Target: target,
    VolumeOptions: {
      NoCopy: true,
      Labels: {},
      DriverConfig: { Name: 'local', Options: { type: 'tmpfs', device: 'tmpfs', o: `size=${maxBytes},mode=1777,nosuid,nodev` } },
    },
  };
}

/**
 * The workdir's mount when it is a named volume shared with a checkout container
 * (docs/design.md#sandboxed-checkout): the same size-capped tmpfs, created by the first container
 * that mounts it, with that container's labels (so it is never without one that owns it). The
 * step container mounts it first and holds it until it is removed, so the checkout's files stay.
 */
function sharedWorkdirMount(spec: ContainerConfig, name: string, maxBytes: number): Dockerode.MountSettings {
  const mount = writableMount(spec.workdir.replace(/\/+$/, ''), maxBytes);
  return { ...mount, Source: name, VolumeOptions: { ...mount.VolumeOptions!, Labels: { ...spec.labels } } } as Dockerode.MountSettings;
}

/**
 * A service runs its image's own process (docs/design.md#services): no Kiln entrypoint, the
 * image's command or the job's `command`, and SIGTERM to stop it (it is removed right after).
 */
function serviceProcess(options: Dockerode.ContainerCreateOptions, command: string[] | null): void {
  delete options.Entrypoint;
  if (command === null) delete options.Cmd;
  else options.Cmd = [...command];
  options.StopSignal = 'SIGTERM';
}

function readOnlyBind(dir: string): Dockerode.MountSettings {
  return { Type: 'bind', Source: dir, Target: dir, ReadOnly: true, BindOptions: { Propagation: 'rprivate' } } as Dockerode.MountSettings;
}

function mountOf(spec: ContainerConfig, target: string): Dockerode.MountSettings {
  const maxBytes = spec.writableMaxBytes ?? DEFAULT_WRITABLE_MAX_BYTES;
  const shared = spec.workdirVolume !== undefined && target === spec.workdir.replace(/\/+$/, '');
  return shared ? sharedWorkdirMount(spec, spec.workdirVolume!.name, maxBytes) : writableMount(target, maxBytes);
}

/**
 * Translates a ContainerConfig into Engine API create options. Pure: no I/O, the same spec
 * always yields the same options, so the whole security posture is unit-tested here.
 *
 * Invariants, whatever the spec says: never privileged, every capability dropped, no privilege
 * gain through setuid binaries, the engine's default seccomp profile (never `unconfined`), a
 * process limit, ulimits, an init process, nothing from the host mounted (the writable
 * directories are size-capped tmpfs volumes, removed with the container; only a checkout
 * container gets the operator's KILN_GIT_LOCAL_ROOT, read-only), no swap beyond the memory limit,
 * and the network exactly as the spec says (`none` unless the server allowed `bridge`, or the
 * operator's checkout network for a checkout container).
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
    // A volume with an empty Source is anonymous: the engine creates it and `remove -v` deletes it.
    // Being a tmpfs, it starts empty: the image's own content at that path is not copied in.
    Mounts: [...writableDirs(spec).map((target) => mountOf(spec, target)), ...(spec.readOnlyHostDirs ?? []).map(readOnlyBind)],
    AutoRemove: false,
    RestartPolicy: { Name: 'no' },
    ...(spec.extraHosts?.length ? { ExtraHosts: [...spec.extraHosts] } : {}),
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
  if (spec.service !== undefined) serviceProcess(options, spec.service.command);
  if (spec.networkAliases?.length) options.NetworkingConfig = { EndpointsConfig: { [spec.network]: { Aliases: [...spec.networkAliases] } } };
  if (spec.user) options.User = spec.user;
  // dockerode copies every option into the query string, so an absent name must be absent,
  // not `name=` (which the engine would reject or treat as a name).
  if (spec.name !== undefined) options.name = spec.name;
  return options;
}
