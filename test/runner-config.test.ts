import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { defaultRunnerSettings } from '../src/runner/settings.js';
import { containerConfigFor, limitsFor, RunRefusedError } from '../src/runner/containerConfig.js';
import type { ExecutionPlan } from '../src/jobfile/types.js';

const plan: ExecutionPlan = {
  image: 'kiln-test/busybox:latest',
  workdir: '/workspace',
  env: { A: '1' },
  secrets: [],
  network: 'none',
  resources: { cpus: null, memoryBytes: null },
  timeoutMs: 60_000,
  repository: null,
  artifacts: [],
  steps: [],
};
const owner = { executionId: 'e-1', jobId: 'j-1', attempt: 2, workerId: 'w-1', installationId: 'i-1' };

describe('the runner configuration', () => {
  it('hardens by default: read-only root, no bridge, limits on memory, cpus and processes', () => {
    const { runner } = loadConfig({});
    expect(runner).toMatchObject({ allowBridge: false, readOnlyRootfs: true, pidsLimit: 512, defaultMemoryBytes: 2 * 1024 ** 3, maxLogBytes: 100 * 1024 ** 2, stopGraceMs: 10_000 });
    expect(runner.defaultCpus).toBeGreaterThan(0);
    expect(runner.defaultCpus).toBeLessThanOrEqual(runner.maxCpus);
    expect(loadConfig({}).secretsKey).toBeNull();
  });

  it('clones over https only, from no host directory, with bounded checkouts by default', () => {
    expect(loadConfig({}).runner).toMatchObject({
      gitProtocols: ['https'], gitLocalRoot: null, checkoutMaxFiles: 100_000, checkoutMaxBytes: 1024 ** 3, checkoutTimeoutMs: 600_000, sshKnownHostsFile: null,
    });
  });

  it('reads every operator setting', () => {
    const { runner, secretsKey } = loadConfig({
      KILN_ALLOW_BRIDGE: 'true',
      KILN_MAX_CPUS: '4',
      KILN_DEFAULT_CPUS: '0.5',
      KILN_MAX_MEMORY: '8g',
      KILN_DEFAULT_MEMORY: '512m',
      KILN_PIDS_LIMIT: '256',
      KILN_READ_ONLY_ROOTFS: 'false',
      KILN_WRITABLE_PATHS: '/go,/root/.cache',
      KILN_CONTAINER_USER: '1000:1000',
      KILN_STOP_GRACE_MS: '2500',
      KILN_MAX_LOG_BYTES: '100m',
      KILN_MAX_ARTIFACT_BYTES: '1g',
      KILN_REGISTRY_AUTH: '{"ghcr.io": {"username": "u", "password": "p"}}',
      KILN_REGISTRY_AUTH_IMAGES: 'ghcr.io/team/*',
      KILN_GIT_PROTOCOLS: 'https,ssh',
      KILN_GIT_LOCAL_ROOT: '/srv/repos/',
      KILN_GIT_IMAGE: 'registry.example.com/git:2',
      KILN_CHECKOUT_NETWORK: 'git-egress',
      KILN_CHECKOUT_MAX_FILES: '5000',
      KILN_CHECKOUT_MAX_BYTES: '200m',
      KILN_CHECKOUT_TIMEOUT_MS: '60000',
      KILN_SSH_KNOWN_HOSTS: '/etc/kiln/known_hosts',
      KILN_SECRETS_KEY: Buffer.alloc(32, 1).toString('base64'),
    });
    expect(runner).toMatchObject({
      allowBridge: true, maxCpus: 4, defaultCpus: 0.5, maxMemoryBytes: 8 * 1024 ** 3, defaultMemoryBytes: 512 * 1024 ** 2,
      pidsLimit: 256, readOnlyRootfs: false, writablePaths: ['/go', '/root/.cache'], user: '1000:1000', stopGraceMs: 2500,
      maxLogBytes: 100 * 1024 ** 2, maxArtifactBytes: 1024 ** 3, registryAuth: { 'ghcr.io': { username: 'u', password: 'p' } },
      gitProtocols: ['https', 'ssh'], gitLocalRoot: '/srv/repos', gitImage: 'registry.example.com/git:2', checkoutNetwork: 'git-egress',
      checkoutMaxFiles: 5000, checkoutMaxBytes: 200 * 1024 ** 2, checkoutTimeoutMs: 60_000, sshKnownHostsFile: '/etc/kiln/known_hosts',
    });
    expect(secretsKey).toEqual(new Uint8Array(32).fill(1));
  });

  it('bounds storage by default, and reads the storage quotas (docs/design.md#quotas)', () => {
    const defaults = loadConfig({});
    expect(defaults.runner).toMatchObject({ maxExecutionArtifactBytes: 2 * 1024 ** 3, ownerStorageQuotaBytes: 10 * 1024 ** 3, writableMaxBytes: 1024 ** 3 });
    expect([defaults.maxSecretsPerOwner, defaults.tickRetentionMs]).toEqual([100, 30 * 86_400_000]);
    const set = loadConfig({
      KILN_MAX_EXECUTION_ARTIFACT_BYTES: '300m', KILN_OWNER_STORAGE_QUOTA: '0', KILN_WRITABLE_MAX_BYTES: '256m',
      KILN_MAX_SECRETS_PER_OWNER: '20', KILN_TICK_RETENTION: '7d12h',
    });
    expect(set.runner).toMatchObject({ maxExecutionArtifactBytes: 300 * 1024 ** 2, ownerStorageQuotaBytes: null, writableMaxBytes: 256 * 1024 ** 2 });
    expect([set.maxSecretsPerOwner, set.tickRetentionMs]).toEqual([20, 7.5 * 86_400_000]);
  });

  it.each([
    [{ KILN_DEFAULT_CPUS: '8', KILN_MAX_CPUS: '2' }, /^KILN_DEFAULT_CPUS: must not exceed KILN_MAX_CPUS/],
    [{ KILN_MAX_MEMORY: 'lots' }, /^KILN_MAX_MEMORY: "lots" is not a memory size/],
    [{ KILN_PIDS_LIMIT: '3' }, /^KILN_PIDS_LIMIT: must be between 16/],
    [{ KILN_WRITABLE_PATHS: 'relative/dir' }, /^KILN_WRITABLE_PATHS: "relative\/dir" is not an absolute path/],
    [{ KILN_REGISTRY_AUTH: '{"ghcr.io": {"token": 1}}' }, /^KILN_REGISTRY_AUTH: unknown key "token"/],
    [{ KILN_REGISTRY_AUTH: 'user:pass' }, /^KILN_REGISTRY_AUTH: is not JSON/],
    [{ KILN_GIT_PROTOCOLS: 'https,ext' }, /^KILN_GIT_PROTOCOLS: "ext" is not an allowed git transport/],
    [{ KILN_SECRETS_KEY: 'c2hvcnQ=' }, /^KILN_SECRETS_KEY: must be 32 bytes/],
    [{ KILN_GIT_PROTOCOLS: 'https,file' }, /^KILN_GIT_PROTOCOLS: "file" is not a network transport: allow a directory with KILN_GIT_LOCAL_ROOT/],
    [{ KILN_GIT_LOCAL_ROOT: 'repos' }, /^KILN_GIT_LOCAL_ROOT: must be an absolute path/],
    [{ KILN_CHECKOUT_NETWORK: 'host' }, /^KILN_CHECKOUT_NETWORK: the host network/],
    [{ KILN_CHECKOUT_MAX_FILES: '0' }, /^KILN_CHECKOUT_MAX_FILES: must be between 1/],
    [{ KILN_OWNER_STORAGE_QUOTA: 'lots' }, /^KILN_OWNER_STORAGE_QUOTA: "lots" is not a memory size/],
    [{ KILN_WRITABLE_MAX_BYTES: '1000' }, /^KILN_WRITABLE_MAX_BYTES: must be at least 1048576 bytes/],
    [{ KILN_MAX_SECRETS_PER_OWNER: '0' }, /^KILN_MAX_SECRETS_PER_OWNER: must be between 1/],
    [{ KILN_TICK_RETENTION: '30' }, /^KILN_TICK_RETENTION: "30" has no unit/],
    [{ KILN_TICK_RETENTION: '10m' }, /^KILN_TICK_RETENTION: must be at least 1h, got 10m/],
  ])('names the bad variable: %o', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });
});

describe('containerConfigFor', () => {
  const settings = { ...defaultRunnerSettings(), maxCpus: 4, defaultCpus: 1, maxMemoryBytes: 4 * 1024 ** 3, defaultMemoryBytes: 1024 ** 3 };

  it('applies the server defaults, the hardening settings and the labels of the attempt', () => {
    const spec = containerConfigFor(plan, owner, settings, 1_000_000);
    expect(spec).toMatchObject({
      image: plan.image,
      env: { A: '1' },
      network: 'none',
      memoryBytes: 1024 ** 3,
      cpus: 1,
      pidsLimit: settings.pidsLimit,
      readOnlyRootfs: true,
      name: 'kiln-e-1-2',
      labels: { kiln: 'true', 'kiln.execution': 'e-1', 'kiln.job': 'j-1', 'kiln.attempt': '2', 'kiln.worker': 'w-1', 'kiln.installation': 'i-1' },
    });
    // The container outlives the run's own timeout and grace only by the slack.
    expect(Number(spec.labels['kiln.deadline'])).toBe(1_000_000 + 60_000 + settings.stopGraceMs + 60_000);
    expect(spec.maxLifetimeSec).toBe((60_000 + settings.stopGraceMs + 60_000) / 1000);
  });

  it('refuses bridge unless allowed, and more than the maxima', () => {
    expect(() => containerConfigFor({ ...plan, network: 'bridge' }, owner, settings, 0)).toThrow(RunRefusedError);
    expect(containerConfigFor({ ...plan, network: 'bridge' }, owner, { ...settings, allowBridge: true }, 0).network).toBe('bridge');
    expect(() => limitsFor({ cpus: 8, memoryBytes: null }, settings)).toThrow("resources.cpus 8 exceeds this server's maximum of 4 (KILN_MAX_CPUS)");
    expect(() => limitsFor({ cpus: null, memoryBytes: 8 * 1024 ** 3 }, settings)).toThrow("resources.memory 8g exceeds this server's maximum of 4g (KILN_MAX_MEMORY)");
    expect(limitsFor({ cpus: 2, memoryBytes: 256 * 1024 ** 2 }, settings)).toEqual({ cpus: 2, memoryBytes: 256 * 1024 ** 2 });
  });
});
