import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';

const SUBMIT = `mutation($spec: String!) { submitJob(spec: $spec) { jobs { id name schedule timezone runOnce priority paused nextRunAt image spec nextRuns(count: 3) } } }`;
const JOBS = `{ jobs { edges { node { id name } } } }`;

let k: TestKiln;
let token: string;

beforeAll(async () => {
  // No Docker needed: scheduled jobs are not due during this file, one-offs run on the noop executor.
  k = await startTestKiln({ env: { KILN_EXECUTOR: 'noop' } });
  token = await k.token('alice');
});
afterAll(() => k?.stop());

function nextUtc(hour: number, now = new Date()): string {
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), hour));
  if (d <= now) d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString();
}

describe('submitting the seed job file', () => {
  it('creates both jobs of the seed verbatim, with schedules parsed and nextRunAt computed', async () => {
    const seed = await readFile(new URL('./fixtures/seed-jobs.yaml', import.meta.url), 'utf8');
    const res = await k.gql(SUBMIT, { spec: seed }, token);
    expect(res.errors).toBeUndefined();
    const [build, cleanup] = res.data!.submitJob.jobs;
    expect(build).toMatchObject({ name: 'BuildAndTest', schedule: '0 0 * * *', timezone: 'UTC', runOnce: false, priority: 5, paused: false, nextRunAt: nextUtc(0) });
    expect(cleanup).toMatchObject({ name: 'NightlyCleanup', schedule: '0 2 * * *', runOnce: true, nextRunAt: nextUtc(2) });
    expect(build.nextRuns).toHaveLength(3);
    expect(new Date(build.nextRuns[1]).getTime() - new Date(build.nextRuns[0]).getTime()).toBe(24 * 3600_000);
    expect(build.spec).toContain('go build -v ./...');
    expect(cleanup.spec).toContain('./cleanup_script.sh');
    expect(build.spec).not.toContain('cleanup_script');
    // Scheduled jobs are not queued on submit.
    const history = await k.gql(`query($id: ID!) { executions(jobId: $id) { edges { node { id } } } }`, { id: build.id }, token);
    expect(history.data!.executions.edges).toHaveLength(0);
  });

  it('updates a job whose name exists instead of creating a second one', async () => {
    const first = await k.gql(SUBMIT, { spec: 'jobs:\n  - name: Same\n    schedule: "0 3 * * *"\n    steps: [{run: "true"}]\n' }, token);
    const second = await k.gql(SUBMIT, { spec: 'jobs:\n  - name: Same\n    schedule: "*/5 * * * *"\n    priority: high\n    steps: [{run: "true"}]\n' }, token);
    expect(second.data!.submitJob.jobs[0].id).toBe(first.data!.submitJob.jobs[0].id);
    expect(second.data!.submitJob.jobs[0]).toMatchObject({ schedule: '*/5 * * * *', priority: 8 });
  });

  it('answers the same over REST with 201 and the ids in file order', async () => {
    const res = await fetch(`${k.url}/api/v1/submit_job`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/yaml' },
      body: 'jobs:\n  - name: RestA\n    schedule: "@every 1h30m"\n    steps: [{run: "true"}]\n  - name: RestB\n    schedule: 1h30m\n    steps: [{run: "true"}]\n',
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { job_id: string; job_ids: string[] };
    expect(body.job_ids).toHaveLength(2);
    expect(body.job_id).toBe(body.job_ids[0]);
    const job = await k.gql(`query($id: ID!) { job(id: $id) { name nextRunAt } }`, { id: body.job_ids[1] }, token);
    expect(job.data!.job.name).toBe('RestB');
    expect(new Date(job.data!.job.nextRunAt).getTime() - Date.now()).toBeGreaterThan(89 * 60_000);
  });
});

/** Each bad file, where its diagnostic must point, and a word its message must contain. */
const BAD_FILES: Array<{ name: string; yaml: string; expect: { line: number; column: number; path: string; message: RegExp } }> = [
  {
    name: 'an unknown key, with a suggestion',
    yaml: 'jobs:\n  - name: A\n    schedul: "0 0 * * *"\n    steps: [{run: "true"}]\n',
    expect: { line: 3, column: 5, path: 'jobs[0].schedul', message: /did you mean "schedule"/ },
  },
  {
    name: 'a wrong type',
    yaml: 'jobs:\n  - name: A\n    retries: lots\n    steps: [{run: "true"}]\n',
    expect: { line: 3, column: 14, path: 'jobs[0].retries', message: /whole number/ },
  },
  {
    name: 'missing steps',
    yaml: 'jobs:\n  - name: A\n    schedule: "0 0 * * *"\n',
    expect: { line: 2, column: 5, path: 'jobs[0].steps', message: /missing required key "steps"/ },
  },
  {
    name: 'a bad cron field',
    yaml: 'jobs:\n  - name: A\n    schedule: "61 * * * *"\n    steps: [{run: "true"}]\n',
    expect: { line: 3, column: 15, path: 'jobs[0].schedule', message: /minute/ },
  },
  {
    name: 'February 30',
    yaml: 'jobs:\n  - name: A\n    schedule: "0 0 30 2 *"\n    steps: [{run: "true"}]\n',
    expect: { line: 3, column: 15, path: 'jobs[0].schedule', message: /never/ },
  },
  {
    name: 'an unknown timezone',
    yaml: 'jobs:\n  - name: A\n    schedule: "0 0 * * *"\n    timezone: Mars/Olympus\n    steps: [{run: "true"}]\n',
    expect: { line: 4, column: 15, path: 'jobs[0].timezone', message: /Mars\/Olympus/ },
  },
  {
    name: 'a bad duration',
    yaml: 'jobs:\n  - name: A\n    timeout: 10 minutes\n    steps: [{run: "true"}]\n',
    expect: { line: 3, column: 14, path: 'jobs[0].timeout', message: /duration/ },
  },
  {
    name: 'an unknown tag',
    yaml: 'jobs:\n  - name: A\n    steps:\n      - run: !!js/function "function () {}"\n',
    expect: { line: 4, column: 14, path: 'jobs[0].steps[0].run', message: /tag/ },
  },
  {
    name: 'two documents in one file',
    yaml: 'jobs:\n  - name: A\n    steps: [{run: "true"}]\n---\njobs:\n  - name: B\n    steps: [{run: "true"}]\n',
    expect: { line: 4, column: 1, path: '', message: /document/ },
  },
  {
    name: 'duplicate job names',
    yaml: 'jobs:\n  - name: A\n    steps: [{run: "true"}]\n  - name: A\n    steps: [{run: "true"}]\n',
    expect: { line: 4, column: 11, path: 'jobs[1].name', message: /duplicate|already/ },
  },
];

describe('rejecting bad job files before anything is stored', () => {
  for (const bad of BAD_FILES) {
    it(`rejects ${bad.name} with a positioned diagnostic`, async () => {
      const res = await k.gql(SUBMIT, { spec: bad.yaml }, token);
      expect(res.data).toBeNull();
      const err = res.errors![0]!;
      expect(err.extensions!.code).toBe('BAD_USER_INPUT');
      const diag = err.extensions!.diagnostics!.find((d) => d.path === bad.expect.path);
      expect(diag, JSON.stringify(err.extensions!.diagnostics)).toBeDefined();
      expect(diag).toMatchObject({ line: bad.expect.line, column: bad.expect.column, severity: 'error' });
      expect(diag!.message).toMatch(bad.expect.message);
    });
  }

  it('rejects a file over 256 KiB', async () => {
    const big = 'jobs:\n  - name: A\n    steps: [{run: "true"}]\n#' + 'x'.repeat(256 * 1024) + '\n';
    const res = await k.gql(SUBMIT, { spec: big }, token);
    expect(res.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect(res.errors![0]!.extensions!.diagnostics![0]).toMatchObject({ line: 1, column: 1 });
    const rest = await fetch(`${k.url}/api/v1/submit_job`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/yaml' }, body: big });
    expect(rest.status).toBe(413);
  });

  it('rejects a YAML alias bomb quickly', async () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill('*' + String.fromCharCode(96 + i)).join(',')}]`);
    lines.push('jobs:\n  - name: A\n    steps: [{run: *i}]');
    const started = Date.now();
    const res = await k.gql(SUBMIT, { spec: lines.join('\n') + '\n' }, token);
    expect(res.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('returns every diagnostic of a file at once, over REST too', async () => {
    const yaml = 'jobs:\n  - name: A\n    schedul: x\n    timeout: soon\n    steps: [{run: "true"}]\n';
    const res = await fetch(`${k.url}/api/v1/submit_job`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-yaml' }, body: yaml });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; diagnostics: Array<{ path: string; line: number }> };
    expect(body.diagnostics.map((d) => d.path).sort()).toEqual(['jobs[0].schedul', 'jobs[0].timeout']);
  });

  it('stored none of the rejected jobs', async () => {
    const res = await k.gql(JOBS, {}, token);
    const names = res.data!.jobs.edges.map((e: { node: { name: string } }) => e.node.name);
    expect(names).toEqual(['BuildAndTest', 'NightlyCleanup', 'RestA', 'RestB', 'Same']);
  });

  it('validates without storing through validateJobSpec', async () => {
    const res = await k.gql(`query($s: String!) { validateJobSpec(spec: $s) { valid diagnostics { line column path message severity } } }`, { s: BAD_FILES[0]!.yaml }, token);
    expect(res.data!.validateJobSpec.valid).toBe(false);
    expect(res.data!.validateJobSpec.diagnostics[0]).toMatchObject({ line: 3, column: 5, path: 'jobs[0].schedul' });
  });
});
