import { randomUUID } from 'node:crypto';
import type Dockerode from 'dockerode';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerBackend } from '../src/runner/docker/docker.js';
import { INSTALLATION_LABEL } from '../src/runner/installation.js';
import { Reaper } from '../src/runner/reaper.js';
import { removeEarlierNetworks } from '../src/runner/services/ExecutionServices.js';
import { serviceContainerConfig, serviceNetworkName } from '../src/runner/services/serviceConfig.js';
import { GIT_TEST_IMAGE, POSTGRES_TEST_IMAGE, TEST_IMAGE, requireDocker, testContainerConfig } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { containersOf, runJob, submitJob, waitForEnd, waitForStatus, type LogLineView } from './helpers/runner.js';

/** Runs of the Postgres job whose readiness gap is measured here (bench/services.ts measures 20). */
const GAP_RUNS = 3;

/** A job whose step runs in `image` beside a Postgres service named `db`. */
function postgresJob(name: string, steps: string[], extra: string[] = [], image = POSTGRES_TEST_IMAGE): string {
  return [
    'jobs:',
    `  - name: ${name}`,
    `    image: ${image}`,
    ...extra.map((l) => `    ${l}`),
    '    services:',
    '      - name: db',
    `        image: ${POSTGRES_TEST_IMAGE}`,
    '        command: [-c, fsync=off]',
    // Not `tcp: 5432`: Postgres listens a moment before it accepts sessions ("the database system
    // is starting up"); pg_isready answers 0 only once it does.
    '        ready: { run: "pg_isready -q -h 127.0.0.1 -U postgres", timeout: 30s }',
    '    steps:',
    ...steps.map((run) => `      - run: ${JSON.stringify(run)}`),
    '',
  ].join('\n');
}

async function networksOf(docker: Dockerode, executionId: string): Promise<string[]> {
  const networks = await docker.listNetworks({ filters: { label: [`kiln.execution=${executionId}`] } });
  return networks.map((n) => n.Name);
}

/** Services go before the outcome is recorded; the step container may go just after it. */
async function expectNothingLeft(docker: Dockerode, executionId: string): Promise<void> {
  await waitFor(
    async () => ((await containersOf(docker, executionId)).length === 0 && (await networksOf(docker, executionId)).length === 0 ? true : undefined),
    10_000,
    `the containers and network of ${executionId} to be removed`,
  );
}

function serviceLines(logs: LogLineView[]): string[] {
  return logs.filter((l) => (l.stream as string) === 'SERVICE').map((l) => l.text);
}

describe('services: beside the build (real Docker engine)', () => {
  let docker: Dockerode;
  let k: TestKiln;
  let token: string;

  beforeAll(async () => {
    docker = await requireDocker();
    await docker.getImage(POSTGRES_TEST_IMAGE).inspect().catch((err: unknown) => {
      throw new Error(`the test image ${POSTGRES_TEST_IMAGE} is missing: run scripts/build-test-images.sh`, { cause: err });
    });
    k = await startTestKiln({ env: { KILN_GIT_IMAGE: GIT_TEST_IMAGE, KILN_STOP_GRACE_MS: '2000' } });
    token = await k.token('services');
  });

  afterAll(async () => {
    await k?.stop();
  });

  it(`runs a step that reaches a Postgres service by its name, started soon after the service accepts connections (median over ${GAP_RUNS} runs < 500 ms)`, async () => {
    const gaps: number[] = [];
    for (let i = 0; i < GAP_RUNS; i++) {
      const e = await runJob(k, token, postgresJob('WithDb', ['psql -h db -U postgres -Atc "select 40 + 2"']), 60_000);
      expect(e.status, e.error ?? '').toBe('SUCCEEDED');
      expect(e.logs.filter((l) => l.stream === 'STDOUT').map((l) => l.text)).toEqual(['42']);
      expect(e.logs.some((l) => l.stream === 'SYSTEM' && /^service "db" is ready \(run "pg_isready .*", \d+ ms\)$/.test(l.text))).toBe(true);
      // Postgres stamps the line itself, in UTC with milliseconds: when it began accepting.
      const ready = serviceLines(e.logs).find((l) => l.startsWith('[db] ') && l.includes('ready to accept connections'));
      expect(ready).toBeDefined();
      const stamp = /(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC/.exec(ready!)![1]!;
      const res = await k.gql(`query($id: ID!) { execution(id: $id) { steps { startedAt } } }`, { id: e.id }, token);
      gaps.push(new Date(res.data!.execution.steps[0].startedAt).getTime() - new Date(`${stamp.replace(' ', 'T')}Z`).getTime());
      await expectNothingLeft(docker, e.id);
    }
    gaps.sort((a, b) => a - b);
    const median = gaps[Math.floor(gaps.length / 2)]!;
    console.log(`services readiness gap (ms), ${GAP_RUNS} runs: ${gaps.join(', ')}; median ${median}`);
    expect(gaps[0]).toBeGreaterThanOrEqual(0); // never before the service was ready
    expect(median).toBeLessThan(500);
  });

  it('awaits a `tcp:` check from inside the network, and the step reaches the service by its name', async () => {
    const yaml = [
      'jobs:',
      '  - name: TcpReady',
      '    services:',
      '      - name: echo-server',
      `        image: ${TEST_IMAGE}`,
      '        command: [sh, -c, "sleep 1; exec nc -ll -p 7000 -e echo hello from the service"]',
      '        ready: { tcp: 7000, timeout: 20s }',
      '    steps:',
      '      - run: nc echo-server 7000 </dev/null',
      '',
    ].join('\n');
    const e = await runJob(k, token, yaml, 60_000);
    expect(e.status, e.error ?? '').toBe('SUCCEEDED');
    expect(e.logs.filter((l) => l.stream === 'STDOUT').map((l) => l.text)).toEqual(['hello from the service']);
    expect(e.logs.some((l) => l.stream === 'SYSTEM' && /^service "echo-server" is ready \(tcp 7000, \d+ ms\)$/.test(l.text))).toBe(true);
    await expectNothingLeft(docker, e.id);
  });

  it('removes the services and the network after a failed step', async () => {
    const e = await runJob(k, token, postgresJob('DbFails', ['exit 3']), 60_000);
    expect(e.status).toBe('FAILED');
    expect(e.exitCode).toBe(3);
    await expectNothingLeft(docker, e.id);
  });

  it('removes the services and the network after a timeout', async () => {
    const e = await runJob(k, token, postgresJob('DbTimesOut', ['sleep 600'], ['timeout: 5s']), 60_000);
    expect(e.status).toBe('TIMED_OUT');
    await expectNothingLeft(docker, e.id);
  });

  it('fails a run whose service never gets ready within its timeout, quoting its last lines', async () => {
    const yaml = [
      'jobs:',
      '  - name: NeverReady',
      '    services:',
      '      - name: db',
      `        image: ${TEST_IMAGE}`,
      '        command: [sh, -c, "echo booting; echo still not listening on 5432; sleep 600"]',
      '        ready: { tcp: 5432, timeout: 3s }',
      '    steps:',
      '      - run: echo never',
      '',
    ].join('\n');
    const e = await runJob(k, token, yaml, 60_000);
    expect(e.status).toBe('FAILED');
    expect(e.error).toMatch(/^service "db" was not ready within 3 s \(tcp 5432\); its last lines: "booting" \/ "still not listening on 5432"$/);
    expect(e.steps[0]!.status).toBe('SKIPPED');
    expect(e.logs.some((l) => l.text === 'never')).toBe(false);
    expect(e.logs.filter((l) => l.stream === 'SYSTEM').map((l) => l.text)).toContain('[db] still not listening on 5432');
    // Within its timeout: 3 s from the service's start, plus the run's own set-up and removal.
    const ran = new Date(e.finishedAt!).getTime() - new Date(e.startedAt!).getTime();
    expect(ran).toBeGreaterThanOrEqual(3000);
    expect(ran).toBeLessThan(3000 + 7000);
    await expectNothingLeft(docker, e.id);
  });

  it('fails at once a service whose `run:` check cannot pass because the service exited', async () => {
    const yaml = [
      'jobs:',
      '  - name: Crashes',
      '    services:',
      '      - name: cache',
      `        image: ${TEST_IMAGE}`,
      '        command: [sh, -c, "echo bad config >&2; exit 7"]',
      '        ready: { run: "test -e /tmp/up", timeout: 60s }',
      '    steps:',
      '      - run: echo never',
      '',
    ].join('\n');
    const started = Date.now();
    const e = await runJob(k, token, yaml, 60_000);
    expect(e.status).toBe('FAILED');
    expect(e.error).toBe('service "cache" stopped with exit code 7 before it was ready; its last lines: "bad config"');
    expect(Date.now() - started).toBeLessThan(30_000);
    await expectNothingLeft(docker, e.id);
  });

  it("keeps each execution's steps off every network but their own, and removes the services after a cancel", async () => {
    // Two executions with services at once: each step sees its own `db`, and the other's address
    // (on another internal network) does not answer.
    const { executionId: a } = await submitJob(k, token, postgresJob('HoldsDb', ['sleep 600']));
    await waitForStatus(k, token, a, 'RUNNING', 30_000);
    const other = await waitFor(
      async () => {
        const service = (await containersOf(docker, a)).find((c) => c.Labels['kiln.role'] === 'service' && c.State === 'running');
        const address = service && Object.values(service.NetworkSettings.Networks)[0]?.IPAddress;
        return address ? address : undefined;
      },
      30_000,
      'the first execution\'s service',
    );
    const e = await runJob(
      k,
      token,
      postgresJob('Isolated', [`psql -h db -U postgres -Atc "select 1"`, `if psql -h ${other} -U postgres -c "select 1" ; then exit 1; fi`], [], POSTGRES_TEST_IMAGE).replace(
        '    steps:',
        '    env: { PGCONNECT_TIMEOUT: "2" }\n    steps:',
      ),
      60_000,
    );
    expect(e.status, e.error ?? '').toBe('SUCCEEDED');
    await expectNothingLeft(docker, e.id);
    const res = await k.gql(`mutation($id: ID!) { cancelExecution(id: $id) { id } }`, { id: a }, token);
    expect(res.errors).toBeUndefined();
    expect((await waitForEnd(k, token, a, 30_000)).status).toBe('CANCELLED');
    await expectNothingLeft(docker, a);
  });

  it("removes what a dead worker's attempt left: the next attempt its earlier networks, the reaper its services and network", async () => {
    const backend = new DockerBackend();
    const engine = backend.services;
    const executionId = randomUUID();
    const installationId = `services-test-${process.pid}`;
    const labelsOf = (attempt: number) => ({
      kiln: 'true', 'kiln.execution': executionId, 'kiln.job': randomUUID(), 'kiln.attempt': String(attempt),
      'kiln.worker': 'a-dead-worker', [INSTALLATION_LABEL]: installationId, 'kiln.deadline': String(Date.now() + 3_600_000),
    });
    for (const attempt of [1, 2, 3]) await engine.createNetwork(serviceNetworkName(executionId, attempt), labelsOf(attempt));
    await removeEarlierNetworks(backend, executionId, 3);
    expect(await networksOf(docker, executionId)).toEqual([serviceNetworkName(executionId, 3)]);

    const network = serviceNetworkName(executionId, 3);
    const step = testContainerConfig({ labels: labelsOf(3) });
    const service = await backend.prepare(serviceContainerConfig(step, { name: 'db', image: TEST_IMAGE, env: {}, command: ['sleep', '600'], ready: null }, network));
    await backend.start(service);
    const pool = new pg.Pool({ connectionString: k.databaseUrl });
    try {
      const reaper = new Reaper({ backend, pool, installationId, workerId: 'this-worker', runsHere: () => false, log: () => {} });
      const reaped = await reaper.sweep();
      expect(reaped.map((r) => r.id)).toEqual([service.id]);
    } finally {
      await pool.end();
    }
    expect(await containersOf(docker, executionId)).toEqual([]);
    expect(await networksOf(docker, executionId)).toEqual([]);
  });
});
