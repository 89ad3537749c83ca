import { describe, expect, it } from 'vitest';
import { IDLE_COMMAND, PIDS_LIMIT, toCreateOptions } from '../src/runner/docker/convert.js';
import type { ContainerSpec } from '../src/runner/types.js';

const base: ContainerSpec = {
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
    expect(options.Entrypoint).toEqual(IDLE_COMMAND);
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
    expect(host.CapAdd).toBeUndefined();
    expect(host.SecurityOpt).toEqual(['no-new-privileges']);
    expect(host.PidsLimit).toBe(PIDS_LIMIT);
    expect(PIDS_LIMIT).toBeGreaterThan(0);
    expect(host.IpcMode).toBe('private');
  });

  it('mounts nothing from the host, not even the Docker socket', () => {
    const options = toCreateOptions(base);
    const host = options.HostConfig!;
    expect(host.Binds).toEqual([]);
    expect(host.Mounts).toEqual([]);
    expect(host.VolumesFrom).toBeUndefined();
    expect(host.Devices).toBeUndefined();
    expect(JSON.stringify(options)).not.toContain('docker.sock');
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
