import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { GIT_TEST_IMAGE, GO_TEST_IMAGE, requireDocker } from './helpers/docker.js';
import { GO_JOB_ENV, makeGoRepository, requireGoImage } from './helpers/goModule.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { logsOf, submitJob, waitForEnd } from './helpers/runner.js';

/** Issue 13, item 3: the fixture Go module built twice with `cache:` keyed on go.sum. */
function goJob(repository: string): string {
  const job = {
    name: 'CachedBuild',
    image: GO_TEST_IMAGE,
    repository: { url: repository, ref: 'main' },
    env: GO_JOB_ENV,
    timeout: '5m',
    cache: { key: 'go-{{ hashFiles "go.sum" }}', restore_keys: ['go-'], paths: ['/root/go/pkg/mod', '/root/.cache/go-build'] },
    steps: [
      { name: 'Set up Go', run: 'go mod download' },
      { name: 'Build', run: 'go build -v ./...' },
      { name: 'Test', run: 'go test -v ./...' },
    ],
  };
  return stringify({ jobs: [job] });
}

interface TimedStep {
  name: string;
  status: string;
  startedAt: string;
  finishedAt: string;
}

describe('the Go build with a cache (issue 13, item 3)', () => {
  let reposDir: string;
  let repository: string;
  let k: TestKiln;
  let token: string;

  beforeAll(async () => {
    const docker = await requireDocker();
    await requireGoImage(docker);
    reposDir = await mkdtemp(path.join(tmpdir(), 'kiln-test-go-cache-'));
    repository = await makeGoRepository(reposDir);
    k = await startTestKiln({ env: { KILN_GIT_IMAGE: GIT_TEST_IMAGE, KILN_GIT_LOCAL_ROOT: reposDir } });
    token = await k.token('gopher');
  }, 120_000);

  afterAll(async () => {
    await k?.stop();
    if (reposDir) await rm(reposDir, { recursive: true, force: true });
  });

  /** Runs the job once; resolves with its build step's seconds and its cache lines. */
  async function build(): Promise<{ buildSeconds: number; cacheLines: string[]; output: string[] }> {
    const { executionId } = await submitJob(k, token, goJob(repository));
    const end = await waitForEnd(k, token, executionId, 240_000);
    const logs = await logsOf(k, token, executionId);
    expect(end.status, `${end.error}\n${logs.map((l) => l.text).join('\n')}`).toBe('SUCCEEDED');
    const res = await k.gql(`query($id: ID!) { execution(id: $id) { steps { name status startedAt finishedAt } } }`, { id: executionId }, token);
    const steps = res.data!.execution.steps as TimedStep[];
    const step = steps.find((s) => s.name === 'Build')!;
    return {
      buildSeconds: (Date.parse(step.finishedAt) - Date.parse(step.startedAt)) / 1000,
      cacheLines: logs.filter((l) => l.stream === 'SYSTEM' && l.text.startsWith('cache: ')).map((l) => l.text),
      output: logs.filter((l) => l.stream !== 'SYSTEM').map((l) => l.text),
    };
  }

  it('restores the module and build caches on the second run, whose build step is at least 3x faster', async () => {
    const cold = await build();
    expect(cold.cacheLines[0]).toMatch(/^cache: no entry for key "go-[0-9a-f]{64}" nor restore keys "go-"$/);
    expect(cold.cacheLines[1]).toMatch(/^cache: saved key "go-[0-9a-f]{64}" \(\d+ bytes, tar.gz\)$/);
    const warm = await build();
    expect(warm.cacheLines[0]).toMatch(/^cache: restored key "go-[0-9a-f]{64}" \(exact key, \d+ bytes\)$/);
    // The dependency was not fetched again: it came from the restored module cache.
    expect(warm.output.some((l) => /^ok {2}\texample\.com\/hello\t/.test(l))).toBe(true);
    console.log(`go build step: cold ${cold.buildSeconds.toFixed(2)} s, warm ${warm.buildSeconds.toFixed(2)} s (${(cold.buildSeconds / warm.buildSeconds).toFixed(1)}x)`);
    expect(cold.buildSeconds).toBeGreaterThanOrEqual(3 * warm.buildSeconds);
  }, 300_000);
});
