import { ConfigError } from '../errors.js';
import { imagePatternProblem } from '../runner/registryAccess.js';
import { defaultRunnerSettings, type RegistryCredentials, type RunnerSettings } from '../runner/settings.js';
import { absolutePath, bool, cpus, dockerNetwork, type Env, int, list, size, str } from './env.js';

function registryAuth(env: Env): Record<string, RegistryCredentials> {
  const raw = str(env, 'KILN_REGISTRY_AUTH');
  if (raw === undefined) return {};
  const bad = (why: string) => new ConfigError('KILN_REGISTRY_AUTH', `${why}; expected JSON such as {"registry.example.com": {"username": "u", "password": "p"}}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw bad('is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad('is not an object');
  const out: Record<string, RegistryCredentials> = {};
  for (const [host, creds] of Object.entries(parsed)) {
    const c = creds as Record<string, unknown>;
    if (typeof c !== 'object' || c === null) throw bad(`the entry for "${host}" is not an object`);
    for (const key of Object.keys(c)) if (!['username', 'password', 'identitytoken'].includes(key)) throw bad(`unknown key "${key}" for "${host}"`);
    if (Object.values(c).some((v) => typeof v !== 'string')) throw bad(`the values for "${host}" must be strings`);
    out[host] = c as RegistryCredentials;
  }
  return out;
}

/** Why `p` may not be in KILN_GIT_PROTOCOLS, or null. */
function gitTransportProblem(p: string): string | null {
  if (p === 'file') return '"file" is not a network transport: allow a directory with KILN_GIT_LOCAL_ROOT instead';
  return /^[a-z][a-z0-9+.-]*$/.test(p) && p !== 'ext' ? null : `"${p}" is not an allowed git transport`;
}

/**
 * KILN_REGISTRY_AUTH_IMAGES: which images every user may pull with the operator's credentials.
 * Required with KILN_REGISTRY_AUTH: without it, any user could pull (and run) any private image
 * the operator's account can read (security review M4).
 */
function registryAuthImages(env: Env, auth: Record<string, RegistryCredentials>): string[] {
  const raw = str(env, 'KILN_REGISTRY_AUTH_IMAGES');
  if (raw === undefined) {
    if (Object.keys(auth).length === 0) return [];
    throw new ConfigError(
      'KILN_REGISTRY_AUTH_IMAGES',
      'is required with KILN_REGISTRY_AUTH: the images every user may pull with these credentials, e.g. "docker.io/library/*,registry.example.com/shared/*" ("*" for all)',
    );
  }
  const patterns = raw.split(/[,\s]+/).filter(Boolean);
  for (const p of patterns) {
    const problem = imagePatternProblem(p);
    if (problem) throw new ConfigError('KILN_REGISTRY_AUTH_IMAGES', problem);
  }
  return patterns;
}

/** The worker's runner settings (containers, checkout, artifacts, registries) from the environment. */
export function loadRunner(env: Env): Readonly<RunnerSettings> {
  const d = defaultRunnerSettings();
  const maxCpus = cpus(env, 'KILN_MAX_CPUS', d.maxCpus);
  const defaultCpus = cpus(env, 'KILN_DEFAULT_CPUS', Math.min(d.defaultCpus, maxCpus));
  if (defaultCpus > maxCpus) throw new ConfigError('KILN_DEFAULT_CPUS', `must not exceed KILN_MAX_CPUS (${maxCpus})`);
  const maxMemoryBytes = size(env, 'KILN_MAX_MEMORY', d.maxMemoryBytes, 4 * 1024 * 1024);
  const defaultMemoryBytes = size(env, 'KILN_DEFAULT_MEMORY', Math.min(d.defaultMemoryBytes, maxMemoryBytes), 4 * 1024 * 1024);
  if (defaultMemoryBytes > maxMemoryBytes) throw new ConfigError('KILN_DEFAULT_MEMORY', `must not exceed KILN_MAX_MEMORY (${maxMemoryBytes} bytes)`);
  const maxLog = str(env, 'KILN_MAX_LOG_BYTES');
  const auth = registryAuth(env);
  return Object.freeze({
    allowBridge: bool(env, 'KILN_ALLOW_BRIDGE', d.allowBridge),
    defaultCpus,
    maxCpus,
    defaultMemoryBytes,
    maxMemoryBytes,
    pidsLimit: int(env, 'KILN_PIDS_LIMIT', d.pidsLimit, 16, 1_000_000),
    nofileLimit: int(env, 'KILN_NOFILE_LIMIT', d.nofileLimit, 64, 1_048_576),
    readOnlyRootfs: bool(env, 'KILN_READ_ONLY_ROOTFS', d.readOnlyRootfs),
    writablePaths: list(env, 'KILN_WRITABLE_PATHS', d.writablePaths, (p) =>
      p.startsWith('/') && !p.split('/').includes('..') && p !== '/' ? null : `"${p}" is not an absolute path below /`,
    ),
    user: str(env, 'KILN_CONTAINER_USER') ?? d.user,
    stopGraceMs: int(env, 'KILN_STOP_GRACE_MS', d.stopGraceMs, 0, 600_000),
    maxLogBytes: maxLog === '0' ? null : size(env, 'KILN_MAX_LOG_BYTES', d.maxLogBytes ?? 0, 1024),
    maxArtifactBytes: size(env, 'KILN_MAX_ARTIFACT_BYTES', d.maxArtifactBytes, 1024),
    maxExecutionArtifactBytes: size(env, 'KILN_MAX_EXECUTION_ARTIFACT_BYTES', d.maxExecutionArtifactBytes, 1024),
    ownerStorageQuotaBytes: str(env, 'KILN_OWNER_STORAGE_QUOTA') === '0' ? null : size(env, 'KILN_OWNER_STORAGE_QUOTA', d.ownerStorageQuotaBytes ?? 0, 1024),
    cacheMaxOwnerBytes: size(env, 'KILN_CACHE_MAX_BYTES', d.cacheMaxOwnerBytes, 1024),
    writableMaxBytes: size(env, 'KILN_WRITABLE_MAX_BYTES', d.writableMaxBytes, 1024 * 1024),
    pullTimeoutMs: int(env, 'KILN_PULL_TIMEOUT_MS', d.pullTimeoutMs, 1000, 3_600_000),
    registryAuth: Object.freeze(auth),
    registryAuthImages: Object.freeze(registryAuthImages(env, auth)),
    reapIntervalMs: int(env, 'KILN_REAP_INTERVAL_MS', d.reapIntervalMs, 100, 3_600_000),
    gitProtocols: list(env, 'KILN_GIT_PROTOCOLS', d.gitProtocols, gitTransportProblem),
    gitLocalRoot: absolutePath(env, 'KILN_GIT_LOCAL_ROOT') ?? d.gitLocalRoot,
    gitImage: str(env, 'KILN_GIT_IMAGE') ?? d.gitImage,
    checkoutNetwork: dockerNetwork(env, 'KILN_CHECKOUT_NETWORK', d.checkoutNetwork),
    checkoutMaxFiles: int(env, 'KILN_CHECKOUT_MAX_FILES', d.checkoutMaxFiles, 1, 100_000_000),
    checkoutMaxBytes: size(env, 'KILN_CHECKOUT_MAX_BYTES', d.checkoutMaxBytes, 1024 * 1024),
    checkoutTimeoutMs: int(env, 'KILN_CHECKOUT_TIMEOUT_MS', d.checkoutTimeoutMs, 1000, 24 * 3_600_000),
    sshKnownHostsFile: absolutePath(env, 'KILN_SSH_KNOWN_HOSTS') ?? d.sshKnownHostsFile,
  });
}
