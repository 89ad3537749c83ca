import { createHmac } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GIT_TEST_IMAGE, requireDocker } from './helpers/docker.js';
import { hostGit } from './helpers/gitServer.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { jobYaml, logsOf, outputOf, waitForEnd } from './helpers/runner.js';

/** Issue 14, item 5: `POST /api/v1/hooks/:job_id` (docs/design.md#webhook-triggers). */
const SECRET = 'push-secret-of-bob';
const sign = (body: string, key = SECRET) => `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;

describe('webhook triggers (issue 14, item 5)', () => {
  let reposDir: string;
  let k: TestKiln;
  let bob: string;
  let jobId: string;
  let pushed: string;
  const logged: string[] = [];

  const post = (id: string, body: string, headers: Record<string, string>) =>
    fetch(`${k.url}/api/v1/hooks/${id}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const submit = async (yaml: string) => {
    const res = await fetch(`${k.url}/api/v1/submit_job`, { method: 'POST', headers: { authorization: `Bearer ${bob}`, 'content-type': 'text/yaml' }, body: yaml });
    expect(res.status).toBe(201);
    return ((await res.json()) as { job_id: string }).job_id;
  };
  const runsOf = async (id: string) => (await k.gql(`query($id: ID!) { job(id: $id) { executions(first: 10) { edges { node { id } } } } }`, { id }, bob)).data?.job.executions.edges as unknown[];

  beforeAll(async () => {
    await requireDocker();
    reposDir = await mkdtemp(path.join(tmpdir(), 'kiln-test-hook-repos-'));
    // Three commits on main: the push names the second, the branch has moved on to the third.
    const work = path.join(reposDir, 'work');
    await mkdir(work);
    hostGit(work, ['init', '-q']);
    for (const text of ['one', 'two', 'three']) {
      await writeFile(path.join(work, 'version.txt'), `${text}\n`);
      hostGit(work, ['add', '.']);
      hostGit(work, ['commit', '-q', '-m', text]);
      if (text === 'two') pushed = hostGit(work, ['rev-parse', 'HEAD']);
    }
    hostGit(reposDir, ['clone', '-q', '--bare', work, 'app.git']);
    k = await startTestKiln({ env: { KILN_GIT_IMAGE: GIT_TEST_IMAGE, KILN_GIT_LOCAL_ROOT: reposDir }, log: (m) => void logged.push(m) });
    bob = await k.token('bob');
    await k.gql(`mutation($n: String!, $v: String!) { setSecret(name: $n, value: $v) { name } }`, { n: 'PUSH_SECRET', v: SECRET }, bob);
    const repo = `repository: { url: "${path.join(reposDir, 'app.git')}", ref: main }`;
    // A yearly schedule: the job does not run on its own during the test.
    const yaml = jobYaml('Pushed', ['cat version.txt'], ['schedule: "0 0 1 1 *"', repo, 'hook: { secret: PUSH_SECRET }']);
    jobId = await submit(yaml);
  }, 120_000);

  afterAll(async () => {
    await k?.stop();
    if (reposDir) await rm(reposDir, { recursive: true, force: true });
  });

  it('refuses an unknown key under hook: with its line and column', async () => {
    const res = await k.gql(`query($s: String!) { validateJobSpec(spec: $s) { valid diagnostics { line column path } } }`, {
      s: jobYaml('Bad', ['true'], ['hook: { secret: PUSH_SECRET, url: x }']),
    }, bob);
    expect(res.data?.validateJobSpec).toEqual({ valid: false, diagnostics: [{ line: 3, column: 34, path: 'jobs[0].hook.url' }] });
  });

  it('answers one 401 for a wrong, missing or malformed signature, an unknown job and a job without hook:, runs nothing, and logs why', async () => {
    const plain = await submit(jobYaml('NoHook', ['true'], ['schedule: "0 0 1 1 *"']));
    const body = JSON.stringify({ ref: 'refs/heads/main', after: pushed });
    const answers = await Promise.all([
      post(jobId, body, { 'x-hub-signature-256': sign(body, 'not-the-secret') }),
      post(jobId, body, {}),
      post(jobId, body, { 'x-hub-signature-256': 'sha256=xyz' }),
      post(jobId, `${body} `, { 'x-hub-signature-256': sign(body) }),
      post('00000000-0000-4000-8000-000000000000', body, { 'x-hub-signature-256': sign(body) }),
      post(plain, body, { 'x-hub-signature-256': sign(body) }),
    ]);
    const bodies = await Promise.all(answers.map((a) => a.text()));
    expect(answers.map((a) => a.status)).toEqual([401, 401, 401, 401, 401, 401]);
    expect(new Set(bodies).size).toBe(1);
    expect(await runsOf(jobId)).toEqual([]);
    expect(logged.filter((m) => m.startsWith('webhook refused (401)'))).toHaveLength(6);
  });

  it('runs a signed push at its commit, not the branch head, as a WEBHOOK run, and a replayed delivery id runs once', async () => {
    const body = JSON.stringify({ ref: 'refs/heads/main', after: pushed, repository: { full_name: 'bob/app' } });
    const headers = { 'x-hub-signature-256': sign(body), 'x-github-delivery': 'd-1', 'x-github-event': 'push' };
    const first = await post(jobId, body, headers);
    expect(first.status).toBe(201);
    const run = (await first.json()) as { execution_id: string; ref: string };
    expect(run.ref).toBe(pushed);
    const recorded = await k.gql(`query($id: ID!) { execution(id: $id) { trigger } }`, { id: run.execution_id }, bob);
    expect(recorded.data?.execution).toEqual({ trigger: 'WEBHOOK' });
    const end = await waitForEnd(k, bob, run.execution_id, 90_000);
    const logs = await logsOf(k, bob, run.execution_id);
    expect(end.status, `${end.error}`).toBe('SUCCEEDED');
    expect(outputOf(logs, 'STDOUT')).toEqual(['two']);

    const again = await post(jobId, body, headers);
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ execution_id: run.execution_id, replayed: true });
    expect(await runsOf(jobId)).toHaveLength(1);
  }, 120_000);

  it('is rate limited per address, before any signature is checked', async () => {
    const strict = await startTestKiln({ databaseUrl: k.databaseUrl, worker: false, env: { KILN_RATE_LIMIT_RPS: '1', KILN_RATE_LIMIT_BURST: '5' } });
    try {
      const flood = await Promise.all(
        Array.from({ length: 20 }, () => fetch(`${strict.url}/api/v1/hooks/${jobId}`, { method: 'POST', headers: { 'x-hub-signature-256': 'sha256=00' }, body: '{}' })),
      );
      const statuses = flood.map((r) => r.status);
      // Burst 5 plus at most a few seconds of refill at 1 a second: well over half are refused.
      expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(10);
      expect(statuses.filter((s) => s !== 429).every((s) => s === 401)).toBe(true);
      expect(flood.find((r) => r.status === 429)?.headers.get('retry-after')).toMatch(/^\d+$/);
    } finally {
      await strict.stop();
    }
  }, 60_000);
});
