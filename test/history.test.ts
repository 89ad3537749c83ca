import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';

let k: TestKiln;
let token: string;
let jobId: string;

const PAGE = `query($job: ID, $after: String) { executions(jobId: $job, first: 3, after: $after) {
  edges { cursor node { id number } } pageInfo { hasNextPage endCursor } } }`;

async function triggerAndFinish(number: number): Promise<void> {
  const t = await k.gql(`mutation($id: ID!) { triggerJob(id: $id) { id number trigger status } }`, { id: jobId }, token);
  expect(t.data!.triggerJob).toMatchObject({ number, trigger: 'MANUAL', status: 'QUEUED' });
  await waitFor(async () => {
    const r = await k.gql(`query($id: ID!) { execution(id: $id) { status } }`, { id: t.data!.triggerJob.id }, token);
    return r.data!.execution.status === 'SUCCEEDED' ? true : undefined;
  }, 30_000, `execution #${number} to succeed`);
}

beforeAll(async () => {
  k = await startTestKiln({ env: { KILN_EXECUTOR: 'noop' } });
  token = await k.token('alice');
  const res = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id } } }`, { s: 'jobs:\n  - name: Often\n    schedule: "0 0 1 1 *"\n    steps: [{run: "true"}]\n' }, token);
  jobId = res.data!.submitJob.jobs[0].id;
  // The job's concurrency policy (skip) refuses a trigger while a run is active: one at a time.
  for (let i = 0; i < 7; i++) await triggerAndFinish(i + 1);
});
afterAll(() => k?.stop());

describe('execution history', () => {
  it('pages newest first with cursors, without gaps or repeats', async () => {
    const numbers: number[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const res = await k.gql(PAGE, { job: jobId, after }, token);
      const conn: any = res.data!.executions;
      numbers.push(...conn.edges.map((e: any) => e.node.number));
      pages++;
      if (!conn.pageInfo.hasNextPage) break;
      after = conn.pageInfo.endCursor;
    }
    expect(pages).toBe(3);
    expect(numbers).toEqual([7, 6, 5, 4, 3, 2, 1]);
  });

  it('keeps paging stable while new executions arrive', async () => {
    const first = await k.gql(PAGE, { job: jobId, after: null }, token);
    await triggerAndFinish(8);
    const second = await k.gql(PAGE, { job: jobId, after: first.data!.executions.pageInfo.endCursor }, token);
    expect(second.data!.executions.edges.map((e: any) => e.node.number)).toEqual([4, 3, 2]);
  });

  it('rejects a forged cursor with BAD_USER_INPUT', async () => {
    const res = await k.gql(PAGE, { job: jobId, after: 'bm90LWEtY3Vyc29y' }, token);
    expect(res.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
  });

  it('lists the same history through Job.executions and the REST route', async () => {
    const viaJob = await k.gql(`query($id: ID!) { job(id: $id) { executions(first: 100) { edges { node { id number } } } lastExecution { number } } }`, { id: jobId }, token);
    const numbers = viaJob.data!.job.executions.edges.map((e: any) => e.node.number);
    expect(numbers[0]).toBe(viaJob.data!.job.lastExecution.number);
    const rest = await fetch(`${k.url}/api/v1/retrieve_history_execution/${jobId}`, { headers: { authorization: `Bearer ${token}` } });
    expect(rest.status).toBe(200);
    const list = (await rest.json()) as Array<{ number: number; job_id: string; status: string }>;
    expect(list.map((e) => e.number)).toEqual(numbers);
    expect(list[list.length - 1]).toMatchObject({ number: 1, job_id: jobId, status: 'SUCCEEDED' });
  });

  it('answers job_status and last_execution_logs over REST', async () => {
    await waitFor(async () => {
      const r = await fetch(`${k.url}/api/v1/job_status/${jobId}`, { headers: { authorization: `Bearer ${token}` } });
      const body = (await r.json()) as { status: string };
      return body.status === 'SUCCEEDED' ? true : undefined;
    }, 30_000, 'the newest execution to succeed');
    const status = (await (await fetch(`${k.url}/api/v1/job_status/${jobId}`, { headers: { authorization: `Bearer ${token}` } })).json()) as any;
    expect(status).toMatchObject({ job_id: jobId, status: 'SUCCEEDED', paused: false, last_execution: { number: 8 } });
    expect(new Date(status.next_run_at).getUTCMonth()).toBe(0);
    const logs = await fetch(`${k.url}/api/v1/last_execution_logs/${jobId}`, { headers: { authorization: `Bearer ${token}` } });
    expect(logs.status).toBe(200);
    expect(logs.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await logs.text()).toMatch(/execution #8 .*\n[\s\S]*execution succeeded\n$/);
  });

  it('says SCHEDULED for a job that has not run yet', async () => {
    const res = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id } } }`, { s: 'jobs:\n  - name: Later\n    schedule: "0 0 1 1 *"\n    steps: [{run: "true"}]\n' }, token);
    const id = res.data!.submitJob.jobs[0].id;
    const status = (await (await fetch(`${k.url}/api/v1/job_status/${id}`, { headers: { authorization: `Bearer ${token}` } })).json()) as any;
    expect(status).toMatchObject({ job_id: id, status: 'SCHEDULED', last_execution: null });
    const logs = await fetch(`${k.url}/api/v1/last_execution_logs/${id}`, { headers: { authorization: `Bearer ${token}` } });
    expect(logs.status).toBe(404);
  });
});

describe('job lifecycle', () => {
  it('pauses (no next run) and resumes (next run after now)', async () => {
    const paused = await k.gql(`mutation($id: ID!) { pauseJob(id: $id) { paused nextRunAt nextRuns(count: 2) } }`, { id: jobId }, token);
    expect(paused.data!.pauseJob).toEqual({ paused: true, nextRunAt: null, nextRuns: [] });
    const resumed = await k.gql(`mutation($id: ID!) { resumeJob(id: $id) { paused nextRunAt } }`, { id: jobId }, token);
    expect(resumed.data!.resumeJob.paused).toBe(false);
    expect(new Date(resumed.data!.resumeJob.nextRunAt).getTime()).toBeGreaterThan(Date.now());
  });

  it('cancels a queued execution so that no worker ever starts it', async () => {
    // An API-only Kiln on its own database: nothing runs, so the execution stays QUEUED.
    const api = await startTestKiln({ worker: false });
    try {
      const t = await api.token('alice');
      const sub = await api.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { lastExecution { id status } } } }`, { s: 'jobs:\n  - name: Once\n    steps: [{run: "true"}, {run: "true"}]\n' }, t);
      const id = sub.data!.submitJob.jobs[0].lastExecution.id;
      const c = await api.gql(`mutation($id: ID!) { cancelExecution(id: $id) { status finishedAt steps { status } } }`, { id }, t);
      expect(c.data!.cancelExecution).toMatchObject({ status: 'CANCELLED', steps: [{ status: 'SKIPPED' }, { status: 'SKIPPED' }] });
      // The executions table is the queue: only a QUEUED row is ever claimed.
      const { rows } = await api.kiln.deps.pool.query(`select count(*)::int as n from executions where id = $1 and status = 'QUEUED'`, [id]);
      expect(rows[0].n).toBe(0);
      const again = await api.gql(`mutation($id: ID!) { cancelExecution(id: $id) { status } }`, { id }, t);
      expect(again.data!.cancelExecution.status).toBe('CANCELLED');
    } finally {
      await api.stop();
    }
  });

  it('previews a schedule as the scheduler computes it', async () => {
    const res = await k.gql(`{ schedulePreview(schedule: "*/15 * * * * *", count: 4) }`, {}, token);
    const times = res.data!.schedulePreview.map((t: string) => new Date(t).getTime());
    expect(times).toHaveLength(4);
    expect(times[1] - times[0]).toBe(15_000);
    const bad = await k.gql(`{ schedulePreview(schedule: "0 0 30 2 *") }`, {}, token);
    expect(bad.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
  });

  it('deletes a job and its history', async () => {
    const del = await k.gql(`mutation($id: ID!) { deleteJob(id: $id) }`, { id: jobId }, token);
    expect(del.data!.deleteJob).toBe(true);
    const gone = await k.gql(`query($id: ID!) { job(id: $id) { id } executions(jobId: $id) { edges { node { id } } } }`, { id: jobId }, token);
    expect(gone.data!.job).toBeNull();
    expect(gone.data!.executions.edges).toEqual([]);
    const again = await k.gql(`mutation($id: ID!) { deleteJob(id: $id) }`, { id: jobId }, token);
    expect(again.errors![0]!.extensions!.code).toBe('NOT_FOUND');
  });
});
