import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPgCluster, type PgCluster } from '../chaos/lib/pgCluster.js';
import { S3Store } from '../src/storage/s3.js';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { startS3rver, type S3rverHandle, s3StoreOn } from './helpers/s3.js';

interface Probe {
  status: number;
  body: { status: string; checks: Record<string, string>; failed: string[] };
  ms: number;
}

async function probe(url: string): Promise<Probe> {
  const started = Date.now();
  const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as Probe['body'], ms: Date.now() - started };
}

/** Probes until `pred` holds; returns that probe. */
function probeUntil(url: string, pred: (p: Probe) => boolean, timeoutMs: number, what: string): Promise<Probe> {
  return waitFor(
    async () => {
      const p = await probe(url);
      return pred(p) ? p : undefined;
    },
    timeoutMs,
    what,
  );
}

// A Kiln (API and worker) on a Postgres cluster of its own and an s3rver, so that both can go down.
describe('/readyz', () => {
  let cluster: PgCluster;
  let s3: S3rverHandle;
  let store: S3Store;
  let k: TestKiln;
  beforeAll(async () => {
    await requireDocker();
    cluster = await startPgCluster();
    s3 = await startS3rver();
    store = s3StoreOn(s3);
    k = await startTestKiln({ databaseUrl: await cluster.createDatabase('kiln_readyz'), store });
  });
  afterAll(async () => {
    await k?.stop();
    store?.close();
    await s3?.stop();
    await cluster?.destroy();
  });

  it('answers 200 when Postgres, the store and the Docker engine answer', async () => {
    const p = await probe(k.url);
    expect(p.body).toEqual({ status: 'ready', checks: { postgres: 'ok', store: 'ok', docker: 'ok' }, failed: [] });
    expect(p.status).toBe(200);
  });

  it('answers 503 naming Postgres while it is down, stays alive, and is ready again once it is back', async () => {
    await cluster.stop('fast');
    try {
      const down = await probeUntil(k.url, (p) => p.status === 503, 10_000, '/readyz to fail');
      expect(down.body.failed).toEqual(['postgres']);
      expect(down.body.checks.postgres).toBe('failed');
      expect(down.body.checks.store).toBe('ok');
      // Each check has its own deadline: /readyz never hangs.
      expect(down.ms).toBeLessThan(5_000);
      const health = await fetch(`${k.url}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: 'ok' });
      // Scrapes still answer, without the gauges read from Postgres (absent, not 0: an empty
      // queue and an unknown one differ) and with kiln_database_up 0. A reading serves 5 s.
      const text = await waitFor(
        async () => {
          const metrics = await fetch(`${k.url}/metrics`, { signal: AbortSignal.timeout(10_000) });
          expect(metrics.status).toBe(200);
          const body = await metrics.text();
          return /^kiln_database_up 0$/m.test(body) ? body : undefined;
        },
        20_000,
        'kiln_database_up to turn 0',
      );
      expect(text).toContain('kiln_process_cpu_seconds_total');
      expect(text).not.toMatch(/^kiln_queue_depth /m);
      expect(text).not.toMatch(/^kiln_executions_running /m);
      // Requests that need the database say so: retry later (503), not a bug (500).
      const token = await k.token('outage-user');
      const rest = await fetch(`${k.url}/api/v1/submit_job`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/yaml' },
        body: `jobs:\n  - name: DuringOutage\n    steps: [{run: "true"}]\n`,
      });
      expect(rest.status).toBe(503);
      expect(Number(rest.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(await rest.json()).toMatchObject({ code: 'SERVICE_UNAVAILABLE', error: expect.stringMatching(/database cannot be reached/) });
      const gql = await k.gql(`{ jobs(first: 1) { edges { node { id } } } }`, {}, token);
      expect(gql.errors?.[0]?.extensions).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    } finally {
      await cluster.start();
    }
    const back = await probeUntil(k.url, (p) => p.status === 200, 30_000, '/readyz to recover');
    expect(back.body.checks).toEqual({ postgres: 'ok', store: 'ok', docker: 'ok' });
    // Ready means it: the worker runs executions again.
    const token = await k.token('readyz-user');
    const spec = `jobs:\n  - name: AfterOutage\n    image: ${TEST_IMAGE}\n    steps:\n      - run: echo back\n`;
    const res = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { lastExecution { id } } } }`, { s: spec }, token);
    expect(res.errors).toBeUndefined();
    const id = res.data!.submitJob.jobs[0].lastExecution.id;
    const status = await waitFor(
      async () => {
        const e = (await k.gql(`query($id: ID!) { execution(id: $id) { status } }`, { id }, token)).data?.execution;
        return e && !['QUEUED', 'RUNNING'].includes(e.status) ? e.status : undefined;
      },
      60_000,
      'an execution after the outage',
    );
    expect(status).toBe('SUCCEEDED');
  });

  it('answers 503 naming the store while it is down, and 200 once it is back', async () => {
    await s3.pause();
    try {
      const down = await probeUntil(k.url, (p) => p.status === 503, 10_000, '/readyz to fail');
      expect(down.body.failed).toEqual(['store']);
      expect(down.body.checks.store).toBe('failed'); // why goes to the log only (security review L8)
      expect(down.ms).toBeLessThan(5_000);
    } finally {
      await s3.resume();
    }
    await probeUntil(k.url, (p) => p.status === 200, 30_000, '/readyz to recover');
  });

  it('answers 503 once the process is shutting down', async () => {
    const other = await startTestKiln({ databaseUrl: await cluster.createDatabase('kiln_readyz_stop'), store, worker: false });
    const url = other.url;
    // Keep-alive: the probe after stop() goes over the connection opened before it.
    expect((await probe(url)).status).toBe(200);
    other.kiln.readiness.shutDown();
    const p = await probe(url);
    expect(p.status).toBe(503);
    expect(p.body.failed).toEqual(['shutdown']);
    await other.kiln.stop();
  });
});
