import type Dockerode from 'dockerode';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GIT_TEST_IMAGE, GO_TEST_IMAGE, POSTGRES_TEST_IMAGE, requireDocker } from './helpers/docker.js';
import { GO_JOB_ENV, makeGoRepository, requireGoImage } from './helpers/goModule.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { containersOf, runJob } from './helpers/runner.js';

/** A Go test that speaks Postgres's protocol to $PGHOST (standard library only), added to the fixture module. */
const DB_TEST = path.join(import.meta.dirname, 'fixtures', 'go', 'services', 'db_test.go');

describe('services: a Go test against a Postgres service (real Docker engine)', () => {
  let docker: Dockerode;
  let k: TestKiln;
  let token: string;
  let reposDir: string;
  let repository: string;

  beforeAll(async () => {
    docker = await requireDocker();
    await requireGoImage(docker);
    await docker.getImage(POSTGRES_TEST_IMAGE).inspect();
    reposDir = await mkdtemp(path.join(tmpdir(), 'kiln-services-go-'));
    repository = await makeGoRepository(reposDir, 'hello.git', (work) => copyFile(DB_TEST, path.join(work, 'db_test.go')));
    k = await startTestKiln({ env: { KILN_GIT_IMAGE: GIT_TEST_IMAGE, KILN_GIT_LOCAL_ROOT: reposDir } });
    token = await k.token('services-go');
  }, 60_000);

  afterAll(async () => {
    await k?.stop();
    if (reposDir) await rm(reposDir, { recursive: true, force: true });
  });

  it('runs `go test` that connects to the service by its name: SUCCEEDED, and nothing of it remains', async () => {
    const env = { ...GO_JOB_ENV, PGHOST: 'db' };
    const yaml = [
      'jobs:',
      '  - name: GoWithDb',
      `    image: ${GO_TEST_IMAGE}`,
      `    repository: { url: ${JSON.stringify(repository)}, ref: main }`,
      `    env: ${JSON.stringify(env)}`,
      '    timeout: 5m',
      '    services:',
      '      - name: db',
      `        image: ${POSTGRES_TEST_IMAGE}`,
      '        ready: { run: "pg_isready -h 127.0.0.1 -U postgres", timeout: 60s }',
      '    steps:',
      '      - run: go test -run TestPostgresService -v ./...',
      '',
    ].join('\n');
    const e = await runJob(k, token, yaml, 280_000);
    const text = e.logs.map((l) => l.text);
    expect(e.status, `${e.error}\n${text.slice(-30).join('\n')}`).toBe('SUCCEEDED');
    expect(text.some((l) => l.startsWith('--- PASS: TestPostgresService ('))).toBe(true);
    expect(text.some((l) => l.includes('postgres at db answered 42'))).toBe(true);
    expect(text.some((l) => /^ok\s+example\.com\/hello\b/.test(l))).toBe(true);
    expect(e.logs.some((l) => l.stream === 'SYSTEM' && /^service "db" is ready \(run "pg_isready/.test(l.text))).toBe(true);
    await waitFor(async () => ((await containersOf(docker, e.id)).length === 0 ? true : undefined), 10_000, 'the containers to be removed');
    expect(await docker.listNetworks({ filters: { label: [`kiln.execution=${e.id}`] } })).toEqual([]);
  }, 300_000);
});
