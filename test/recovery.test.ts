import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { overlappingPairs, sleep, submit, ticksOf } from './helpers/ledger.js';
import { startKilnProcess, type KilnProcess } from './helpers/processes.js';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';

/** Worker processes here are real `kiln worker` processes (compiled; `npm test` builds first). */
const WORKER_ENV = { KILN_EXECUTOR: 'noop', KILN_WORKER_CONCURRENCY: '2' };

describe('recovery from a killed worker', () => {
  let api: TestKiln;
  let token: string;
  const procs: KilnProcess[] = [];
  beforeAll(async () => {
    api = await startTestKiln({ worker: false });
    token = await api.token('alice');
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) await p.stop();
  });
  afterAll(() => api?.stop());

  it('re-queues the execution of a SIGKILLed worker as attempt 2, which finishes within 15 s, never two at once', async () => {
    const a = startKilnProcess('worker', api.databaseUrl, 'worker-a', WORKER_ENV);
    procs.push(a);
    const [jobId] = await submit(api.gql, token, 'jobs:\n  - name: LongOne\n    steps: [{run: "sleep 4"}, {run: "true"}]\n');
    const pool = api.kiln.deps.pool;
    const running = await waitFor(async () => {
      const { rows } = await pool.query(`select id, worker_id from executions where job_id = $1 and status = 'RUNNING'`, [jobId]);
      return rows[0];
    }, 20_000, 'worker A to start the execution');
    expect(running.worker_id).toBe('worker-a');
    await sleep(500);
    a.kill();
    const killedAt = Date.now();
    procs.push(startKilnProcess('worker', api.databaseUrl, 'worker-b', WORKER_ENV));

    const done = await waitFor(async () => {
      const r = await api.gql(`query($id: ID!) { execution(id: $id) { status attempt error steps { status } logs { stream text } } }`, { id: running.id }, token);
      const e = r.data!.execution;
      return e.status === 'SUCCEEDED' ? e : undefined;
    }, 30_000, 'the execution to succeed on worker B');
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    expect(done.attempt).toBe(2);
    expect(done.steps.map((s: any) => s.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect(done.logs.some((l: any) => l.stream === 'SYSTEM' && /attempt 1 lost: worker worker-a stopped heartbeating/.test(l.text))).toBe(true);
    const { rows } = await pool.query(`select worker_id, (select count(*)::int from executions where job_id = $2) as n from executions where id = $1`, [running.id, jobId]);
    expect(rows[0]).toEqual({ worker_id: 'worker-b', n: 1 });
    expect(await overlappingPairs(pool, jobId!)).toBe(0);
  }, 60_000);

  it('removes the dead attempt\'s container before attempt 2 runs in Docker', async () => {
    const docker = await requireDocker();
    const env = { KILN_WORKER_CONCURRENCY: '2', KILN_DEFAULT_IMAGE: TEST_IMAGE };
    const a = startKilnProcess('worker', api.databaseUrl, 'worker-e', env);
    procs.push(a);
    const [jobId] = await submit(api.gql, token, 'jobs:\n  - name: DockerLong\n    steps: [{run: "sleep 3"}, {run: "echo done"}]\n');
    const pool = api.kiln.deps.pool;
    const running = await waitFor(async () => {
      const { rows } = await pool.query(`select id from executions where job_id = $1 and status = 'RUNNING'`, [jobId]);
      return rows[0];
    }, 30_000, 'worker E to start the execution');
    const containers = async () => (await docker.listContainers({ all: true, filters: { label: [`kiln.execution=${running.id}`] } })).map((c) => c.Labels['kiln.attempt']);
    await waitFor(async () => ((await containers()).length === 1 ? true : undefined), 10_000, 'the attempt-1 container');
    a.kill(); // the container of attempt 1 keeps running its step: nobody stopped it
    procs.push(startKilnProcess('worker', api.databaseUrl, 'worker-f', env));
    let seenTogether = false;
    const done = await waitFor(async () => {
      const attempts = await containers();
      if (attempts.includes('1') && attempts.includes('2')) seenTogether = true;
      const { rows } = await pool.query(`select status, attempt from executions where id = $1`, [running.id]);
      return rows[0].status === 'SUCCEEDED' ? rows[0] : undefined;
    }, 40_000, 'attempt 2 to succeed');
    expect(done.attempt).toBe(2);
    expect(seenTogether).toBe(false);
    await waitFor(async () => ((await containers()).length === 0 ? true : undefined), 10_000, 'no container of the execution left');
  }, 90_000);

  it('hands the scheduler over when the leader is killed, with no missed or doubled tick', async () => {
    const a = startKilnProcess('worker', api.databaseUrl, 'worker-c', WORKER_ENV);
    const b = startKilnProcess('worker', api.databaseUrl, 'worker-d', WORKER_ENV);
    procs.push(a, b);
    const pool = api.kiln.deps.pool;
    const leader = async () => {
      const { rows } = await pool.query<{ name: string }>(
        `select a.application_name as name from pg_locks l join pg_stat_activity a on a.pid = l.pid
          where l.locktype = 'advisory' and l.objid = $1 and l.granted and a.datname = current_database()`,
        [0x6b696c6e],
      );
      return rows[0]?.name;
    };
    const first = await waitFor(leader, 20_000, 'a scheduler leader');
    const [jobId] = await submit(api.gql, token, 'jobs:\n  - name: EverySecond\n    schedule: "*/1 * * * * *"\n    steps: [{run: "true"}]\n');
    await sleep(3_000);
    const victim = first === 'kiln worker-c' ? a : b;
    victim.kill();
    const second = await waitFor(async () => {
      const l = await leader();
      return l && l !== first ? l : undefined;
    }, 10_000, 'another worker to take the leadership');
    expect([`kiln worker-c`, `kiln worker-d`]).toContain(second);
    await sleep(4_000);
    const ticks = await ticksOf(pool, jobId!);
    const times = ticks.map((t) => new Date(t.fire_time).getTime());
    expect(ticks.length).toBeGreaterThanOrEqual(6);
    expect(times.slice(1).every((t, i) => t - times[i]! === 1000), JSON.stringify(times)).toBe(true);
    // Every second is accounted for: fired, or skipped because the killed worker's run still
    // held the job until its lease ran out (under load the victim may die holding one).
    expect(ticks.filter((t) => t.outcome !== 'FIRED' && t.outcome !== 'SKIPPED_OVERLAP'), JSON.stringify(ticks)).toEqual([]);
    expect(ticks.filter((t) => t.outcome === 'FIRED').length).toBeGreaterThanOrEqual(1);
    const { rows } = await pool.query<{ n: number; d: number }>(
      `select count(*)::int as n, count(distinct scheduled_for)::int as d from executions where job_id = $1`,
      [jobId],
    );
    expect(rows[0]!.n).toBe(rows[0]!.d);
    expect(rows[0]!.n).toBe(ticks.filter((t) => t.outcome === 'FIRED').length);
  }, 60_000);
});
