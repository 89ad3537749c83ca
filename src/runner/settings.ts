import { availableParallelism, totalmem } from 'node:os';

/** Credentials for one image registry, as the Engine API's `X-Registry-Auth` takes them. */
export interface RegistryCredentials {
  username?: string;
  password?: string;
  /** An OAuth identity token instead of a password. */
  identitytoken?: string;
}

/**
 * How a worker runs containers: the hardening an operator may change and the server-side limits
 * on what a job may ask for. Built once by loadConfig from `KILN_*` variables (see README,
 * "Containers"); what is not here (no privileges, every capability dropped, no-new-privileges,
 * the default seccomp profile, no host mounts, an init process) cannot be turned off.
 */
export interface RunnerSettings {
  /** Whether a job may ask for `network: bridge` (KILN_ALLOW_BRIDGE). Otherwise it fails. */
  allowBridge: boolean;
  /** CPUs of a job that sets no `resources.cpus` (KILN_DEFAULT_CPUS). */
  defaultCpus: number;
  /** Most CPUs a job may ask for (KILN_MAX_CPUS); asking for more fails the execution. */
  maxCpus: number;
  /** Memory of a job that sets no `resources.memory` (KILN_DEFAULT_MEMORY). */
  defaultMemoryBytes: number;
  /** Most memory a job may ask for (KILN_MAX_MEMORY). Swap is never added on top. */
  maxMemoryBytes: number;
  /** Most processes and threads in one container (KILN_PIDS_LIMIT): stops fork bombs. */
  pidsLimit: number;
  /** Open files per process (KILN_NOFILE_LIMIT). */
  nofileLimit: number;
  /** Root filesystem mounted read-only (KILN_READ_ONLY_ROOTFS); /workspace and /tmp stay writable. */
  readOnlyRootfs: boolean;
  /**
   * Extra writable directories on a read-only root (KILN_WRITABLE_PATHS), each a fresh volume
   * filled from the image's own content: caches and homes that build tools write to.
   */
  writablePaths: string[];
  /** Run steps as this user (`uid[:gid]` or a name) instead of the image's (KILN_CONTAINER_USER). */
  user: string | null;
  /** After SIGTERM, how long processes get to exit before SIGKILL (KILN_STOP_GRACE_MS). */
  stopGraceMs: number;
  /** Bytes of output stored per execution, null = no cap (KILN_MAX_LOG_BYTES; `0` = no cap). */
  maxLogBytes: number | null;
  /** Bytes one artifact may take once compressed (KILN_MAX_ARTIFACT_BYTES). */
  maxArtifactBytes: number;
  /** Bytes all artifacts of one execution may take once compressed (KILN_MAX_EXECUTION_ARTIFACT_BYTES). */
  maxExecutionArtifactBytes: number;
  /**
   * Bytes of stored artifacts one owner may hold across all their executions, null = no quota
   * (KILN_OWNER_STORAGE_QUOTA; `0` = no quota). See docs/design.md#quotas.
   */
  ownerStorageQuotaBytes: number | null;
  /**
   * Bytes of build caches one owner may keep, compressed (KILN_CACHE_MAX_BYTES); one cache may
   * take all of it. Past it, the owner's least recently used caches are evicted (docs/design.md#build-caches).
   */
  cacheMaxOwnerBytes: number;
  /**
   * Bytes each writable directory of a container (the workdir, /tmp, KILN_WRITABLE_PATHS) may hold
   * (KILN_WRITABLE_MAX_BYTES). They are tmpfs volumes: their content counts against the container's
   * memory limit and never reaches the engine's disk.
   */
  writableMaxBytes: number;
  /** Longest an image pull may take (KILN_PULL_TIMEOUT_MS). */
  pullTimeoutMs: number;
  /** Registry host -> credentials for pulls (KILN_REGISTRY_AUTH, JSON). `docker.io` for Docker Hub. */
  registryAuth: Readonly<Record<string, RegistryCredentials>>;
  /**
   * Images every user may pull with `registryAuth` (KILN_REGISTRY_AUTH_IMAGES): repositories,
   * prefixes ending in `/*`, or `*`. Owners' own credentials are their secrets (REGISTRY_AUTH_<HOST>).
   */
  registryAuthImages: readonly string[];
  /** How often the worker looks for orphaned containers (KILN_REAP_INTERVAL_MS). */
  reapIntervalMs: number;
  /**
   * Network transports `repository.url` may use (KILN_GIT_PROTOCOLS), as git's GIT_ALLOW_PROTOCOL
   * names them; `file` is not one of them (see gitLocalRoot).
   */
  gitProtocols: string[];
  /**
   * The one host directory whose repositories jobs may clone by path or `file://` URL
   * (KILN_GIT_LOCAL_ROOT), mounted read-only into the checkout container; null = none.
   */
  gitLocalRoot: string | null;
  /** The image the checkout runs in (KILN_GIT_IMAGE): git, a POSIX shell with awk, ssh. */
  gitImage: string;
  /** The docker network the checkout container is on (KILN_CHECKOUT_NETWORK); the steps keep the job's. */
  checkoutNetwork: string;
  /** Most files a checked-out commit may hold (KILN_CHECKOUT_MAX_FILES). */
  checkoutMaxFiles: number;
  /** Most bytes the checked-out files may take, and any one file of the clone (KILN_CHECKOUT_MAX_BYTES). */
  checkoutMaxBytes: number;
  /** Longest a checkout may take (KILN_CHECKOUT_TIMEOUT_MS), within the job's own timeout. */
  checkoutTimeoutMs: number;
  /** The ssh known_hosts file the operator vouches for (KILN_SSH_KNOWN_HOSTS); ssh URLs need it. */
  sshKnownHostsFile: string | null;
}

const GiB = 1024 ** 3;

/** The defaults loadConfig starts from; every one can be overridden by its variable. */
export function defaultRunnerSettings(): RunnerSettings {
  const cpus = Math.max(1, availableParallelism());
  return {
    allowBridge: false,
    defaultCpus: Math.min(2, cpus),
    maxCpus: cpus,
    defaultMemoryBytes: 2 * GiB,
    maxMemoryBytes: Math.max(2 * GiB, Math.floor(totalmem() / GiB) * GiB),
    pidsLimit: 512,
    nofileLimit: 8192,
    readOnlyRootfs: true,
    writablePaths: ['/root', '/home', '/go'],
    user: null,
    stopGraceMs: 10_000,
    // A CI log past 100 MiB is noise, and one build must not be able to fill Postgres.
    maxLogBytes: 100 * 1024 * 1024,
    maxArtifactBytes: GiB,
    maxExecutionArtifactBytes: 2 * GiB,
    ownerStorageQuotaBytes: 10 * GiB,
    cacheMaxOwnerBytes: 5 * GiB,
    // Half the default memory: a build filling its workspace still has room to run.
    writableMaxBytes: GiB,
    pullTimeoutMs: 10 * 60_000,
    registryAuth: {},
    registryAuthImages: [],
    reapIntervalMs: 30_000,
    // A shared installation clones from the network over TLS only; see docs/design.md#sandboxed-checkout.
    gitProtocols: ['https'],
    gitLocalRoot: null,
    gitImage: 'alpine/git:v2.45.1',
    checkoutNetwork: 'bridge',
    checkoutMaxFiles: 100_000,
    checkoutMaxBytes: GiB,
    checkoutTimeoutMs: 10 * 60_000,
    sshKnownHostsFile: null,
  };
}
