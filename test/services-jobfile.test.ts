import { describe, expect, it } from 'vitest';
import { compileJobFile, toExecutionPlan } from '../src/jobfile/compile.js';
import type { Diagnostic } from '../src/jobfile/types.js';
import { probeContainerConfig, serviceContainerConfig, tcpProbeCommand } from '../src/runner/services/serviceConfig.js';
import { toCreateOptions } from '../src/runner/docker/convert.js';
import type { ContainerConfig } from '../src/runner/types.js';

const file = (...lines: string[]): string => `${lines.join('\n')}\n`;

/** A job with `services:` given as the lines after `    services:`. */
const withServices = (...lines: string[]): string =>
  file('jobs:', '  - name: J', '    services:', ...lines.map((l) => `      ${l}`), '    steps:', '      - run: make test');

function diagnostics(source: string): Array<Pick<Diagnostic, 'line' | 'column' | 'path' | 'message'>> {
  const result = compileJobFile(source);
  if (result.ok) throw new Error('expected the file to be rejected');
  return result.diagnostics.map(({ line, column, path, message }) => ({ line, column, path, message }));
}

describe('services: in the job file', () => {
  it('compiles the DESIGN example into the job and its plan, with the defaults filled in', () => {
    const result = compileJobFile(
      withServices(
        '- name: db',
        '  image: postgres:16',
        '  env: { POSTGRES_PASSWORD: test, PORT: 5432 }',
        '  command: [postgres, -c, fsync=off]',
        '  ready: { tcp: 5432, timeout: 60s }',
        '- name: cache',
        '  image: redis:7',
        '  ready: { run: "redis-cli ping" }',
        '- name: plain',
        '  image: busybox',
        '  command: sleep 600',
      ),
    );
    if (!result.ok) throw new Error(JSON.stringify(result.diagnostics));
    const services = result.jobs[0]!.services;
    expect(services).toEqual([
      { name: 'db', image: 'postgres:16', env: { POSTGRES_PASSWORD: 'test', PORT: '5432' }, command: ['postgres', '-c', 'fsync=off'], ready: { tcp: 5432, timeoutMs: 60_000 } },
      { name: 'cache', image: 'redis:7', env: {}, command: null, ready: { run: 'redis-cli ping', timeoutMs: 60_000 } },
      { name: 'plain', image: 'busybox', env: {}, command: ['sleep', '600'], ready: null },
    ]);
    expect(toExecutionPlan(result.jobs[0]!, { image: 'x' }).services).toEqual(services);
  });

  it('leaves jobs without services as they were: no `services` in the job or its plan', () => {
    const result = compileJobFile(file('jobs:', '  - name: J', '    steps:', '      - run: make'));
    if (!result.ok) throw new Error('expected success');
    expect('services' in result.jobs[0]!).toBe(false);
    expect('services' in toExecutionPlan(result.jobs[0]!, { image: 'x' })).toBe(false);
  });

  it('reports unknown keys, bad names, duplicates and missing images with their line and column', () => {
    expect(
      diagnostics(
        withServices(
          '- name: Db_1',
          '  image: postgres:16',
          '  port: 5432',
          '- name: db',
          '  image: a',
          '- name: db',
          '  image: b',
          '- name: -x',
          '- name: localhost',
          '  image: c',
        ),
      ),
    ).toEqual([
      { line: 4, column: 15, path: 'jobs[0].services[0].name', message: expect.stringMatching(/^service name "Db_1" must be a host name/) },
      { line: 6, column: 9, path: 'jobs[0].services[0].port', message: 'unknown key "port"' },
      { line: 9, column: 15, path: 'jobs[0].services[2].name', message: 'duplicate service name "db": jobs[0].services[1] has it already' },
      { line: 11, column: 9, path: 'jobs[0].services[3].image', message: 'missing required key "image"' },
      { line: 11, column: 15, path: 'jobs[0].services[3].name', message: expect.stringMatching(/^service name "-x" must be a host name/) },
      { line: 12, column: 15, path: 'jobs[0].services[4].name', message: '"localhost" is not available as a service name' },
    ]);
  });

  it('reports bad readiness checks at the offending key or value', () => {
    expect(
      diagnostics(
        withServices(
          '- name: a',
          '  image: i',
          '  ready: { tcp: 70000 }',
          '- name: b',
          '  image: i',
          '  ready: { tcp: 1, run: "x" }',
          '- name: c',
          '  image: i',
          '  ready: { timeout: 5s }',
          '- name: d',
          '  image: i',
          '  ready: { run: "", timeout: 2h }',
          '- name: e',
          '  image: i',
          '  ready: { http: /health }',
          '- name: f',
          '  image: i',
          '  ready: 5432',
        ),
      ),
    ).toEqual([
      { line: 6, column: 23, path: 'jobs[0].services[0].ready.tcp', message: 'tcp must be a whole number from 1 to 65535, got the number 70000' },
      { line: 9, column: 26, path: 'jobs[0].services[1].ready.run', message: 'ready takes either "tcp" or "run", not both' },
      { line: 12, column: 16, path: 'jobs[0].services[2].ready', message: 'ready needs "tcp: <port>" or "run: <command>"' },
      { line: 15, column: 23, path: 'jobs[0].services[3].ready.run', message: 'run must be a non-empty string, got ""' },
      { line: 15, column: 36, path: 'jobs[0].services[3].ready.timeout', message: 'timeout must be at most 30m' },
      { line: 18, column: 16, path: 'jobs[0].services[4].ready', message: 'ready needs "tcp: <port>" or "run: <command>"' },
      { line: 18, column: 18, path: 'jobs[0].services[4].ready.http', message: 'unknown key "http"; did you mean "tcp"?' },
      { line: 21, column: 16, path: 'jobs[0].services[5].ready', message: expect.stringMatching(/^ready must be a mapping such as/) },
    ]);
  });

  it('refuses services with network: bridge, and more than 10 services', () => {
    const bridge = file('jobs:', '  - name: J', '    network: bridge', '    services:', '      - { name: db, image: i }', '    steps:', '      - run: x');
    expect(diagnostics(bridge)).toEqual([{ line: 4, column: 5, path: 'jobs[0].services', message: expect.stringMatching(/^services cannot be combined with network: bridge/) }]);
    const many = withServices(...Array.from({ length: 11 }, (_, i) => `- { name: s${i}, image: i }`));
    expect(diagnostics(many)).toEqual([{ line: 4, column: 7, path: 'jobs[0].services', message: 'a job may have at most 10 services, found 11' }]);
  });
});

describe('service containers as Docker sees them', () => {
  const step: ContainerConfig = {
    image: 'golang:1.23',
    env: { SECRETLESS: '1' },
    labels: { kiln: 'true', 'kiln.execution': 'e', 'kiln.attempt': '2' },
    network: 'none',
    workdir: '/workspace',
    memoryBytes: 512 * 1024 * 1024,
    cpus: 1,
    name: 'kiln-e-2',
    pidsLimit: 256,
    readOnlyRootfs: true,
    writablePaths: ['/root'],
    writableMaxBytes: 1024 ** 3,
    user: '1000:1000',
    maxLifetimeSec: 3600,
  };
  const service = { name: 'db', image: 'postgres:16', env: { POSTGRES_PASSWORD: 'x' }, command: ['-c', 'fsync=off'], ready: null };

  it("runs the service's own process under the step container's limits, on the attempt's network under its name", () => {
    const options = toCreateOptions(serviceContainerConfig(step, service, 'kiln-e-2-net'));
    expect(options.Entrypoint).toBeUndefined();
    expect(options.Cmd).toEqual(['-c', 'fsync=off']);
    expect(options.User).toBeUndefined(); // the image's own user, not the steps'
    expect(options.Env).toEqual(['POSTGRES_PASSWORD=x']);
    expect(options.name).toBe('kiln-e-2-db');
    expect(options.Labels).toMatchObject({ 'kiln.execution': 'e', 'kiln.attempt': '2', 'kiln.role': 'service', 'kiln.service': 'db' });
    expect(options.NetworkingConfig).toEqual({ EndpointsConfig: { 'kiln-e-2-net': { Aliases: ['db'] } } });
    const host = options.HostConfig!;
    expect(host).toMatchObject({ NetworkMode: 'kiln-e-2-net', Privileged: false, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'], PidsLimit: 256, Memory: 512 * 1024 * 1024, ReadonlyRootfs: true });
    expect(host.Mounts!.map((m) => m.Target)).toEqual(['/tmp', '/run', '/root']);
    const noCommand = toCreateOptions(serviceContainerConfig(step, { ...service, command: null }, 'n'));
    expect('Cmd' in noCommand).toBe(false);
  });

  it('gives the probe a small idle container and the step container the services\' addresses', () => {
    const probe = toCreateOptions(probeContainerConfig(step, 'alpine/git', 'kiln-e-2-net'));
    expect(probe.Entrypoint).toEqual(expect.arrayContaining(['/bin/sh']));
    expect(probe.HostConfig).toMatchObject({ NetworkMode: 'kiln-e-2-net', Memory: 32 * 1024 * 1024, PidsLimit: 32, CapDrop: ['ALL'] });
    expect(probe.Labels).toMatchObject({ 'kiln.role': 'service-probe' });
    expect(toCreateOptions({ ...step, network: 'kiln-e-2-net', extraHosts: ['db:10.0.0.2'] }).HostConfig!.ExtraHosts).toEqual(['db:10.0.0.2']);
    expect('ExtraHosts' in toCreateOptions(step).HostConfig!).toBe(false);
    expect(tcpProbeCommand('10.0.0.2', 5432)).toBe('nc -w 1 10.0.0.2 5432 -e true');
  });
});
