import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { gaps, overlappingPairs, sleep, submit, ticksOf } from './helpers/ledger.js';

/** Scheduler behaviour on the noop executor: timing is the point here, not containers. */
describe('firing on time', () => {
  let k: TestKiln;
  let token: string;
  beforeAll(async () => {
    k = await startTestKiln({ env: { KILN_EXECUTOR: 'noop', KILN_WORKER_CONCURRENCY: '4' } });
    token = await k.token('alice');
  });
  afterAll(() => k?.stop());

  it('fires a per-second job and an @every 2s job at every fire time for 10 s, each exactly once', async () => {
    const [perSecond, every2] = await submit(k.gql, token, `jobs:
  - name: PerSecond
    schedule: "*/1 * * * * *"
    steps: [{run: "true"}]
  - name: Every2
    schedule: "@every 2s"
    steps: [{run: "true"}]
`);
    // The job was stored by the time the submit answered (on a loaded machine that may take a
    // while): its first fire is the next whole second after that, give or take the margin.
    const t0 = Date.now();
    await sleep(11_000);
    const pool = k.kiln.deps.pool;
    const sec = await ticksOf(pool, perSecond!);
    expect(sec.length).toBeGreaterThanOrEqual(10);
    expect(new Date(sec[0]!.fire_time).getTime() - t0).toBeLessThanOrEqual(1_500);
    expect(gaps(sec).every((g) => g === 1000), JSON.stringify(gaps(sec))).toBe(true);
    expect(sec.every((t) => t.outcome === 'FIRED' && t.execution_id !== null)).toBe(true);
    expect(new Set(sec.map((t) => t.execution_id)).size).toBe(sec.length);

    const two = await ticksOf(pool, every2!);
    expect(two.length).toBeGreaterThanOrEqual(5);
    expect(gaps(two).every((g) => g === 2000), JSON.stringify(gaps(two))).toBe(true);
    expect(two.every((t) => t.outcome === 'FIRED')).toBe(true);

    // Every execution answers exactly one fire time, and started close to it.
    const { rows } = await pool.query<{ n: number; distinct_fires: number; worst_ms: number }>(
      `select count(*)::int as n, count(distinct scheduled_for)::int as distinct_fires,
              max(extract(epoch from (started_at - scheduled_for)) * 1000)::float as worst_ms
         from executions where job_id = $1 and started_at is not null`,
      [perSecond],
    );
    expect(rows[0]!.n).toBe(rows[0]!.distinct_fires);
    expect(rows[0]!.worst_ms).toBeLessThan(1_000);
  });

  it('fires a run_once job once and never again', async () => {
    const [once] = await submit(k.gql, token, 'jobs:\n  - name: Once\n    schedule: "*/1 * * * * *"\n    run_once: true\n    steps: [{run: "true"}]\n');
    await sleep(3_500);
    const ticks = await ticksOf(k.kiln.deps.pool, once!);
    expect(ticks.map((t) => t.outcome)).toEqual(['FIRED']);
    const res = await k.gql(`query($id: ID!) { job(id: $id) { nextRunAt nextRuns(count: 2) executions { edges { node { trigger status } } } } }`, { id: once }, token);
    expect(res.data!.job.nextRunAt).toBeNull();
    expect(res.data!.job.executions.edges).toHaveLength(1);
    expect(res.data!.job.executions.edges[0].node.trigger).toBe('SCHEDULE');
  });

  it('shows the ledger over GraphQL, newest first, and records PAUSED ticks while paused', async () => {
    const [job] = await submit(k.gql, token, 'jobs:\n  - name: Pausable\n    schedule: "*/1 * * * * *"\n    steps: [{run: "true"}]\n');
    await sleep(2_200);
    const paused = await k.gql(`mutation($id: ID!) { pauseJob(id: $id) { paused nextRunAt } }`, { id: job }, token);
    expect(paused.data!.pauseJob).toEqual({ paused: true, nextRunAt: null });
    await sleep(2_200);
    await k.gql(`mutation($id: ID!) { resumeJob(id: $id) { paused } }`, { id: job }, token);
    await sleep(1_500);
    const res = await k.gql(`query($id: ID!) { job(id: $id) { ticks(first: 100) { edges { node { fireTime outcome execution { trigger } } } } } }`, { id: job }, token);
    const ticks = res.data!.job.ticks.edges.map((e: any) => e.node);
    const times = ticks.map((t: any) => new Date(t.fireTime).getTime());
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(times.slice(1).every((t: number, i: number) => times[i] - t === 1000)).toBe(true); // no hole
    const outcomes = ticks.map((t: any) => t.outcome).reverse().join(',');
    expect(outcomes).toMatch(/^(FIRED,)+(PAUSED,)+FIRED(,FIRED)*$/);
    expect(ticks.filter((t: any) => t.outcome === 'FIRED').every((t: any) => t.execution.trigger === 'SCHEDULE')).toBe(true);
    expect(ticks.filter((t: any) => t.outcome === 'PAUSED').every((t: any) => t.execution === null)).toBe(true);
  });
});

describe('priorities', () => {
  let k: TestKiln;
  let token: string;
  beforeAll(async () => {
    k = await startTestKiln({ env: { KILN_EXECUTOR: 'noop', KILN_WORKER_CONCURRENCY: '1' } });
    token = await k.token('alice');
  });
  afterAll(() => k?.stop());

  it('starts a high-priority execution before 20 low-priority ones queued earlier', async () => {
    // The worker (concurrency 1) is busy with this one while the others queue up.
    await submit(k.gql, token, 'jobs:\n  - name: Busy\n    steps: [{run: "sleep 2"}]\n');
    const lows = Array.from({ length: 20 }, (_, i) => `  - name: Low${i}\n    priority: low\n    steps: [{run: "true"}]\n`).join('');
    await submit(k.gql, token, `jobs:\n${lows}`);
    await submit(k.gql, token, 'jobs:\n  - name: High\n    priority: high\n    steps: [{run: "true"}]\n');
    const pool = k.kiln.deps.pool;
    const order = await waitFor(async () => {
      const { rows } = await pool.query<{ name: string; status: string }>(
        `select j.name, e.status from executions e join jobs j on j.id = e.job_id order by e.started_at nulls last, e.created_at`,
      );
      return rows.every((r) => r.status === 'SUCCEEDED') ? rows.map((r) => r.name) : undefined;
    }, 30_000, 'all 22 executions to finish');
    expect(order.slice(0, 2)).toEqual(['Busy', 'High']);
    expect(order).toHaveLength(22);
  });
});

describe('overlap policies', () => {
  let k: TestKiln;
  let token: string;
  const ids: Record<string, string> = {};
  let maxWaiting = 0;

  beforeAll(async () => {
    k = await startTestKiln({ env: { KILN_EXECUTOR: 'noop', KILN_WORKER_CONCURRENCY: '6' } });
    token = await k.token('alice');
    const spec = (name: string, policy: string) => `  - name: ${name}\n    schedule: "*/1 * * * * *"\n    concurrency: ${policy}\n    steps: [{run: "sleep 3"}]\n`;
    [ids.skip, ids.queue, ids.replace] = await submit(k.gql, token, `jobs:\n${spec('Skip', 'skip')}${spec('Queue', 'queue')}${spec('Replace', 'replace')}`);
    const pool = k.kiln.deps.pool;
    const until = Date.now() + 9_000;
    while (Date.now() < until) {
      const { rows } = await pool.query<{ n: number }>(`select count(*)::int as n from executions where job_id = $1 and status = 'QUEUED'`, [ids.queue]);
      maxWaiting = Math.max(maxWaiting, rows[0]!.n);
      await sleep(100);
    }
    for (const id of Object.values(ids)) await k.gql(`mutation($id: ID!) { pauseJob(id: $id) { id } }`, { id }, token);
    await waitFor(async () => {
      const { rows } = await pool.query<{ n: number }>(`select count(*)::int as n from executions where status in ('QUEUED', 'RUNNING')`);
      return rows[0]!.n === 0 ? true : undefined;
    }, 30_000, 'every execution to finish');
  }, 90_000);
  afterAll(() => k?.stop());

  it('skip: records SKIPPED_OVERLAP ticks while a run is active and never overlaps', async () => {
    const ticks = await ticksOf(k.kiln.deps.pool, ids.skip!);
    expect(ticks.filter((t) => t.outcome === 'SKIPPED_OVERLAP').length).toBeGreaterThanOrEqual(3);
    expect(ticks.filter((t) => t.outcome === 'FIRED').length).toBeGreaterThanOrEqual(2);
    expect(await overlappingPairs(k.kiln.deps.pool, ids.skip!)).toBe(0);
  });

  it('queue: keeps at most one execution waiting and never overlaps', async () => {
    expect(maxWaiting).toBe(1);
    const ticks = await ticksOf(k.kiln.deps.pool, ids.queue!);
    expect(ticks.filter((t) => t.outcome === 'SKIPPED_OVERLAP').length).toBeGreaterThanOrEqual(2);
    expect(await overlappingPairs(k.kiln.deps.pool, ids.queue!)).toBe(0);
  });

  it('replace: ends the running execution CANCELLED before the next one starts, and never overlaps', async () => {
    const { rows } = await k.kiln.deps.pool.query<{ number: number; status: string; started_at: Date | null; finished_at: Date | null }>(
      `select number, status, started_at, finished_at from executions where job_id = $1 order by number`,
      [ids.replace],
    );
    const started = rows.filter((r) => r.started_at !== null);
    expect(rows.filter((r) => r.status === 'CANCELLED').length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < started.length; i++) {
      expect(started[i - 1]!.finished_at!.getTime()).toBeLessThanOrEqual(started[i]!.started_at!.getTime());
    }
    expect(await overlappingPairs(k.kiln.deps.pool, ids.replace!)).toBe(0);
  });

  it('applies the policy to manual triggers too: skip answers CONFLICT while a run is active', async () => {
    const [id] = await submit(k.gql, token, 'jobs:\n  - name: ManualSkip\n    steps: [{run: "sleep 2"}]\n');
    const res = await k.gql(`mutation($id: ID!) { triggerJob(id: $id) { id } }`, { id }, token);
    expect(res.errors![0]!.extensions!.code).toBe('CONFLICT');
  });
});
