import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_LIFETIME_SEC, DEFAULT_WRITABLE_MAX_BYTES, NOFILE_LIMIT, PIDS_LIMIT, idleCommand, toCreateOptions, writableDirs } from '../src/runner/docker/convert.js';
import type { ContainerConfig } from '../src/runner/types.js';

const base: ContainerConfig = {
  image: 'golang:1.23',
  env: { GOFLAGS: '-mod=mod', EMPTY: '', WITH_EQUALS: 'a=b' },
  labels: {
    kiln: 'true',
    'kiln.job': 'job-id',
    'kiln.execution': 'execution-id',
    'kiln.attempt': '2',
    'kiln.worker': 'worker-1',
  },
  network: 'none',
  workdir: '/workspace',
  memoryBytes: 1024 ** 3,
  cpus: 1.5,
};

describe('toCreateOptions', () => {
  it('runs the image with an idle main process under docker-init, replacing its entrypoint', () => {
    const options = toCreateOptions(base);
    expect(options.Image).toBe('golang:1.23');
    expect(options.Entrypoint).toEqual(idleCommand(DEFAULT_MAX_LIFETIME_SEC));
    expect(options.Cmd).toEqual([]);
    expect(options.HostConfig?.Init).toBe(true);
    expect(options.Tty).toBe(false);
    expect(options.OpenStdin).toBe(false);
  });

  it('carries the labels, the workdir and the environment as KEY=value', () => {
    const options = toCreateOptions(base);
    expect(options.Labels).toEqual(base.labels);
    expect(options.Labels).not.toBe(base.labels);
    expect(options.WorkingDir).toBe('/workspace');
    expect(options.Env).toEqual(['GOFLAGS=-mod=mod', 'EMPTY=', 'WITH_EQUALS=a=b']);
  });

  it('uses the network the spec names, none by default and bridge when allowed', () => {
    expect(toCreateOptions(base).HostConfig?.NetworkMode).toBe('none');
    expect(toCreateOptions({ ...base, network: 'bridge' }).HostConfig?.NetworkMode).toBe('bridge');
  });

  it('limits memory without extra swap and converts cpus to nano cpus', () => {
    const host = toCreateOptions(base).HostConfig!;
    expect(host.Memory).toBe(1024 ** 3);
    expect(host.MemorySwap).toBe(1024 ** 3);
    expect(host.NanoCpus).toBe(1_500_000_000);
    expect(toCreateOptions({ ...base, cpus: 0.1 }).HostConfig?.NanoCpus).toBe(100_000_000);
  });

  it('sets no memory or cpu limit when the spec has none', () => {
    const host = toCreateOptions({ ...base, memoryBytes: null, cpus: null }).HostConfig!;
    expect(host).not.toHaveProperty('Memory');
    expect(host).not.toHaveProperty('MemorySwap');
    expect(host).not.toHaveProperty('NanoCpus');
  });

  it('never grants privileges, drops every capability and limits processes', () => {
    const host = toCreateOptions(base).HostConfig!;
    expect(host.Privileged).toBe(false);
    expect(host.CapDrop).toEqual(['ALL']);
    expect(host.CapAdd).toEqual([]);
    expect(host.SecurityOpt).toEqual(['no-new-privileges']);
    expect(host.PidsLimit).toBe(PIDS_LIMIT);
    expect(PIDS_LIMIT).toBeGreaterThan(0);
    expect(host.IpcMode).toBe('private');
    expect(toCreateOptions({ ...base, pidsLimit: 64 }).HostConfig?.PidsLimit).toBe(64);
  });

  it('keeps the default seccomp profile, whatever the spec', () => {
    for (const spec of [base, { ...base, readOnlyRootfs: false, network: 'bridge' as const, user: '0' }]) {
      const opts = toCreateOptions(spec).HostConfig!.SecurityOpt ?? [];
      expect(opts.some((o: string) => o.startsWith('seccomp'))).toBe(false);
      expect(opts.some((o: string) => /apparmor[=:]unconfined|label[=:]disable/.test(o))).toBe(false);
    }
  });

  it('sets ulimits: open files, and no core dumps', () => {
    expect(toCreateOptions(base).HostConfig?.Ulimits).toEqual([
      { Name: 'nofile', Soft: NOFILE_LIMIT, Hard: NOFILE_LIMIT },
      { Name: 'core', Soft: 0, Hard: 0 },
    ]);
    expect(toCreateOptions({ ...base, nofileLimit: 1024 }).HostConfig?.Ulimits?.[0]).toEqual({ Name: 'nofile', Soft: 1024, Hard: 1024 });
  });

  it('makes the container, not the worker, the first victim of a host-wide out-of-memory kill', () => {
    expect(toCreateOptions(base).HostConfig?.OomScoreAdj).toBeGreaterThan(0);
  });

  it('mounts nothing from the host, not even the Docker socket', () => {
    const options = toCreateOptions({ ...base, readOnlyRootfs: true, writablePaths: ['/go', '/root/.cache'] });
    const host = options.HostConfig!;
    expect(host.Binds).toEqual([]);
    // Only anonymous volumes (no Source): the engine creates them and removes them with the container.
    // Each is a tmpfs of the local driver: nothing of the host's disk either.
    for (const mount of host.Mounts!) {
      expect(mount).toEqual({
        Type: 'volume',
        Source: '',
        Target: mount.Target,
        VolumeOptions: { NoCopy: true, Labels: {}, DriverConfig: { Name: 'local', Options: { type: 'tmpfs', device: 'tmpfs', o: expect.stringMatching(/^size=\d+,/) } } },
      });
    }
    expect(host.VolumesFrom).toBeUndefined();
    expect(host.Devices).toBeUndefined();
    expect(JSON.stringify(options)).not.toContain('docker.sock');
  });

  it('makes the root filesystem read-only with the workdir, /tmp and the extra paths writable', () => {
    const options = toCreateOptions({ ...base, readOnlyRootfs: true, writablePaths: ['/go', '/root/.cache/', '/tmp'] });
    expect(options.HostConfig?.ReadonlyRootfs).toBe(true);
    expect(options.HostConfig?.Mounts?.map((m) => m.Target)).toEqual(['/workspace', '/tmp', '/go', '/root/.cache']);
    expect(toCreateOptions({ ...base, readOnlyRootfs: false }).HostConfig?.ReadonlyRootfs).toBe(false);
    expect(writableDirs({ workdir: '/workspace', writablePaths: ['/', '/workspace/'] })).toEqual(['/workspace', '/tmp']);
  });

  it('caps the size of every writable directory (KILN_WRITABLE_MAX_BYTES), 1 GiB when the spec names none', () => {
    const sized = toCreateOptions({ ...base, readOnlyRootfs: true, writablePaths: ['/go'], writableMaxBytes: 64 * 1024 * 1024 });
    const options = (m: Dockerode.MountSettings) => m.VolumeOptions?.DriverConfig?.Options?.o;
    expect(sized.HostConfig!.Mounts!.map(options)).toEqual(Array(3).fill(`size=${64 * 1024 * 1024},mode=1777,nosuid,nodev`));
    expect(toCreateOptions(base).HostConfig!.Mounts!.map(options)).toEqual(Array(2).fill(`size=${DEFAULT_WRITABLE_MAX_BYTES},mode=1777,nosuid,nodev`));
  });

  it('runs as the configured user, else as the image says', () => {
    expect(toCreateOptions(base)).not.toHaveProperty('User');
    expect(toCreateOptions({ ...base, user: '1000:1000' }).User).toBe('1000:1000');
  });

  it('stops by itself when its lifetime runs out, with an idle process that ignores SIGTERM', () => {
    const entrypoint = toCreateOptions({ ...base, maxLifetimeSec: 90.2 }).Entrypoint as string[];
    expect(entrypoint).toEqual(['/bin/sh', '-c', 'trap "" TERM INT HUP; exec sleep "$0"', '91']);
    expect(toCreateOptions(base).StopSignal).toBe('SIGKILL');
  });

  it('names the container only when the spec gives a name', () => {
    expect(toCreateOptions(base)).not.toHaveProperty('name');
    expect(toCreateOptions({ ...base, name: 'kiln-exec-1-a2' }).name).toBe('kiln-exec-1-a2');
  });

  it('is pure: the same spec gives equal options and the spec is left untouched', () => {
    const copy = structuredClone(base);
    expect(toCreateOptions(base)).toEqual(toCreateOptions(base));
    expect(base).toEqual(copy);
  });
});
