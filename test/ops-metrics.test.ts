import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from './helpers/db.js';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { startWorkerProcess } from './helpers/workerProcess.js';

/** One sample of a Prometheus text exposition: the value of `name` whose labels include `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** The sum of a metric's samples whose labels include `labels` (0 when there is none yet). */
function total(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

async function scrape(baseUrl: string): Promise<string> {
  const res = await fetch(`${baseUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return res.text();
}

const JOBS = `jobs:
  - name: Fine
    image: ${TEST_IMAGE}
    steps:
      - run: echo hello metrics
  - name: Broken
    image: ${TEST_IMAGE}
    steps:
      - run: echo about to fail; exit 3
      - run: echo never
  - name: OnTime
    image: ${TEST_IMAGE}
    schedule: "* * * * * *"
    run_once: true
    steps:
      - run: echo tick
`;

describe('/metrics on the API port', () => {
  let k: TestKiln;
  let token: string;
  beforeAll(async () => {
    await requireDocker();
    k = await startTestKiln();
    token = await k.token('metrics-user');
  });
  afterAll(async () => {
    await k?.stop();
  });

  it('needs no token and names every metric with the kiln_ prefix', async () => {
    const text = await scrape(k.url);
    const names = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(10);
    expect(names.filter((n) => !n.startsWith('kiln_'))).toEqual([]);
    for (const name of ['kiln_queue_depth', 'kiln_executions_running', 'kiln_scheduler_leader', 'kiln_process_cpu_seconds_total', 'kiln_log_bytes_total']) {
      expect(names).toContain(name);
    }
    expect(sample(text, 'kiln_database_up')).toBe(1);
  });

  it('counts finished executions by status, step durations, stored log bytes and fire lateness', async () => {
    const before = await scrape(k.url);
    const submitted = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id name } } }`, { s: JOBS }, token);
    expect(submitted.errors).toBeUndefined();
    const jobs = submitted.data!.submitJob.jobs as Array<{ id: string; name: string }>;
    const finished = await waitFor(
      async () => {
        const res = await k.gql(`{ jobs { edges { node { name lastExecution { status trigger } } } } }`, {}, token);
        const nodes = res.data!.jobs.edges.map((e: any) => e.node);
        const done = nodes.filter((n: any) => n.lastExecution && !['QUEUED', 'RUNNING'].includes(n.lastExecution.status));
        return done.length === jobs.length ? nodes : undefined;
      },
      60_000,
      'the three executions to finish',
    );
    expect(Object.fromEntries(finished.map((n: any) => [n.name, [n.lastExecution.status, n.lastExecution.trigger]]))).toEqual({
      Fine: ['SUCCEEDED', 'SUBMIT'],
      Broken: ['FAILED', 'SUBMIT'],
      OnTime: ['SUCCEEDED', 'SCHEDULE'],
    });
    const after = await scrape(k.url);
    const delta = (name: string, labels: Record<string, string> = {}) => total(after, name, labels) - total(before, name, labels);

    expect(delta('kiln_executions_finished_total', { status: 'SUCCEEDED' })).toBe(2);
    expect(delta('kiln_executions_finished_total', { status: 'FAILED' })).toBe(1);
    expect(delta('kiln_execution_duration_seconds_count', { status: 'SUCCEEDED' })).toBe(2);
    expect(delta('kiln_execution_duration_seconds_count', { status: 'FAILED' })).toBe(1);
    // Three steps ran to an exit code (the step after the failure was skipped).
    expect(delta('kiln_step_duration_seconds_count', { status: 'SUCCEEDED' })).toBe(2);
    expect(delta('kiln_step_duration_seconds_count', { status: 'FAILED' })).toBe(1);
    expect(delta('kiln_log_bytes_total')).toBeGreaterThanOrEqual(Buffer.byteLength('hello metrics' + 'about to fail' + 'tick'));
    // Only the scheduled execution has a fire time.
    expect(delta('kiln_fire_lateness_seconds_count')).toBe(1);
    const lateness = delta('kiln_fire_lateness_seconds_sum');
    expect(lateness).toBeGreaterThanOrEqual(0);
    expect(lateness).toBeLessThan(30); // generous: a shared 2-core machine
    expect(sample(after, 'kiln_fire_lateness_seconds_bucket', { le: '+Inf' })).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'kiln_queue_depth')).toBe(0);
    expect(sample(after, 'kiln_executions_running')).toBe(0);
  });

  it('shows 1 on the scheduler leader and 0 on a process that is not', async () => {
    await waitFor(async () => (sample(await scrape(k.url), 'kiln_scheduler_leader') === 1 ? true : undefined), 15_000, 'the leader gauge');
    // Another Kiln in this very process, on the same database: its own registry, its own counts.
    const api = await startTestKiln({ databaseUrl: k.databaseUrl, worker: false });
    try {
      const text = await scrape(api.url);
      expect(sample(text, 'kiln_scheduler_leader')).toBe(0);
      expect(total(text, 'kiln_executions_finished_total')).toBe(0);
      expect(sample(text, 'kiln_queue_depth')).toBe(0);
    } finally {
      await api.stop();
    }
  });

  it('shows queued executions in the queue depth gauge', async () => {
    // An API-only Kiln on a database of its own: nothing takes the executions it queues.
    const api = await startTestKiln({ worker: false });
    try {
      const t = await api.token('queue-user');
      const spec = `jobs:\n  - name: Waits\n    image: ${TEST_IMAGE}\n    steps:\n      - run: echo never\n`;
      const res = await api.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id } } }`, { s: spec }, t);
      expect(res.errors).toBeUndefined();
      expect(sample(await scrape(api.url), 'kiln_queue_depth')).toBe(1);
    } finally {
      await api.stop();
    }
  });
});

describe('the listener of `kiln worker` on KILN_WORKER_PORT', () => {
  it('serves /healthz, /readyz and /metrics, and nothing else', async () => {
    const db = await createTestDatabase();
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-ops-worker-'));
    const worker = await startWorkerProcess(db.url, dataDir, { KILN_WORKER_PORT: '0', KILN_EXECUTOR: 'noop' });
    try {
      const url = await waitFor(async () => /health and metrics at (http:\/\/[\d.:]+)/.exec(worker.output())?.[1], 10_000, 'the listener address in the log');
      const health = await fetch(`${url}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: 'ok' });
      const ready = await fetch(`${url}/readyz`);
      expect(await ready.json()).toMatchObject({ status: 'ready', checks: { postgres: 'ok', store: 'ok', docker: 'ok' } });
      expect(ready.status).toBe(200);
      await waitFor(async () => (sample(await scrape(url), 'kiln_scheduler_leader') === 1 ? true : undefined), 15_000, 'the worker to lead');
      const text = await scrape(url);
      expect(sample(text, 'kiln_process_cpu_seconds_total')).toBeGreaterThan(0);
      expect(sample(text, 'kiln_queue_depth')).toBe(0);
      expect((await fetch(`${url}/graphql`)).status).toBe(404);
    } finally {
      await worker.stop();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
