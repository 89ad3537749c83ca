import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintLocalToken } from '../src/auth/token.js';
import { localAuth } from '../src/config.js';
import { KilnClient, ExecutionsDocument, ExecutionUpdatedDocument, JobsDocument, PauseJobDocument, SubmitJobDocument } from '@kiln/sdk';
import { createTestDatabase } from './helpers/db.js';
import { TEST_SECRET, waitFor } from './helpers/kiln.js';
import { overlappingPairs, sleep, ticksOf } from './helpers/ledger.js';
import { startKilnProcess, type KilnProcess } from './helpers/processes.js';

/**
 * Kiln scaled out the way the design intends: two API processes (`kiln serve`) and three worker
 * processes (`kiln worker`), all separate OS processes sharing nothing but one Postgres. Jobs go
 * in through API 1 and are watched through API 2; the scheduler leader and another worker are
 * SIGKILLed mid-run, and the ledger must still account for every fire time exactly once. The
 * noop executor keeps per-second schedules cheap on a shared 2-core machine (Docker runs are
 * covered by recovery.test.ts and live-two-processes.test.ts).
 */
const LEADER_LOCK = 0x6b696c6e;
const WORKER_ENV = { KILN_EXECUTOR: 'noop', KILN_WORKER_CONCURRENCY: '2' };

const JOBS = `jobs:
  - name: TickA
    schedule: "*/1 * * * * *"
    steps: [{run: "true"}]
  - name: TickB
    schedule: "*/1 * * * * *"
    steps: [{run: "sleep 0.2"}]
  - name: TickC
    schedule: "@every 1s"
    steps: [{run: "sleep 0.1"}, {run: "true"}]
  - name: Queued
    schedule: "*/1 * * * * *"
    concurrency: queue
    steps: [{run: "sleep 2.5"}]
  - name: Skipping
    schedule: "*/2 * * * * *"
    steps: [{run: "sleep 3"}]
`;

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let pool: pg.Pool;
const procs: KilnProcess[] = [];

/** The base URL a `kiln serve` started on port 0 reports (plain or JSON log lines). */
async function apiUrl(p: KilnProcess): Promise<string> {
  return waitFor(async () => {
    if (p.child.exitCode !== null) throw new Error(`${p.workerId} exited during start-up:\n${p.output()}`);
    return /(http:\/\/127\.0\.0\.1:\d+)\/graphql/.exec(p.output())?.[1];
  }, 40_000, `${p.workerId} to listen`);
}

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 3 });
  pool.on('error', () => {});
});
afterAll(async () => {
  // SIGTERM, and SIGKILL for any process that has not exited 15 s later.
  await Promise.all(procs.map((p) => Promise.race([p.stop(), sleep(15_000).then(() => p.kill())])));
  await pool?.end();
  await db?.drop();
});

describe('scale-out: 2 API and 3 worker processes on one database', () => {
  it('keeps every fire time once, runs every fired tick exactly once and never two at once, through the loss of the leader and another worker', async () => {
    const started = Date.now();
    const api1 = startKilnProcess('serve', db.url, 'api-1');
    const api2 = startKilnProcess('serve', db.url, 'api-2');
    const workers = ['w1', 'w2', 'w3'].map((id) => startKilnProcess('worker', db.url, `scale-${id}`, WORKER_ENV));
    procs.push(api1, api2, ...workers);
    const [url1, url2] = await Promise.all([apiUrl(api1), apiUrl(api2)]);

    const leader = async () => {
      const { rows } = await pool.query<{ name: string }>(
        `select a.application_name as name from pg_locks l join pg_stat_activity a on a.pid = l.pid
          where l.locktype = 'advisory' and l.objid = $1 and l.granted and a.datname = current_database()`,
        [LEADER_LOCK],
      );
      return rows[0]?.name;
    };
    await waitFor(leader, 40_000, 'a scheduler leader among the workers');

    const token = await mintLocalToken(localAuth(new TextEncoder().encode(TEST_SECRET)) as Extract<ReturnType<typeof localAuth>, { mode: 'local' }>, 'scaler', 3600);
    const one = new KilnClient({ url: url1, token });
    const two = new KilnClient({ url: url2, token });
    try {
      // Follow everything through API 2 before anything exists: it learns of the executions
      // only through Postgres (the workers and API 1 are other processes).
      const lastSeen = new Map<string, string>();
      let events = 0;
      const following = (async () => {
        for await (const { executionUpdated: e } of two.subscribe(ExecutionUpdatedDocument, {})) {
          events++;
          lastSeen.set(e.id, e.status);
        }
      })();
      following.catch(() => {}); // ends with an error when the client closes at the end
      await sleep(500);

      const { submitJob } = await one.request(SubmitJobDocument, { spec: JOBS });
      const jobs = submitJob.jobs.map((j) => ({ id: j.id, name: j.name }));
      expect(jobs).toHaveLength(5);

      await sleep(5_000);
      // Kill the leader and, preferably, a worker in the middle of an execution, so that both
      // the scheduler's failover and the re-queueing of a dead worker's run are exercised.
      const leaderName = await leader();
      const victim1 = workers.find((w) => `kiln ${w.workerId}` === leaderName);
      expect(victim1, `leader ${leaderName}`).toBeDefined();
      const { rows: busy } = await pool.query<{ worker_id: string }>(`select distinct worker_id from executions where status = 'RUNNING'`);
      const others = workers.filter((w) => w !== victim1);
      const victim2 = others.find((w) => busy.some((b) => b.worker_id === w.workerId)) ?? others[0]!;
      const killedRunning = busy.filter((b) => b.worker_id === victim1!.workerId || b.worker_id === victim2.workerId).length;
      victim1!.kill();
      victim2.kill();
      const newLeader = await waitFor(async () => {
        const l = await leader();
        return l && l !== leaderName ? l : undefined;
      }, 10_000, 'the surviving worker to take the leadership');
      const survivor = workers.find((w) => w !== victim1 && w !== victim2)!;
      expect(newLeader).toBe(`kiln ${survivor.workerId}`);

      await sleep(10_000);
      // Stop new fires (through API 2), then let everything in flight finish, including the
      // dead workers' runs once their leases expire.
      for (const job of jobs) await two.request(PauseJobDocument, { id: job.id });
      await waitFor(async () => {
        const { rows } = await pool.query<{ n: number }>(`select count(*)::int as n from executions where status in ('QUEUED', 'RUNNING')`);
        return rows[0]!.n === 0 ? true : undefined;
      }, 30_000, 'every execution to reach a final status');

      let fired = 0;
      const summary: string[] = [];
      for (const job of jobs) {
        const ticks = await ticksOf(pool, job.id);
        const what = `${job.name}: ${JSON.stringify(ticks.map((t) => [new Date(t.fire_time).toISOString().slice(14, 23), t.outcome]))}`;
        const step = job.name === 'Skipping' ? 2000 : 1000;
        const times = ticks.map((t) => new Date(t.fire_time).getTime());
        // Consecutive fire times: none missed, none doubled (the ledger's key is (job, time)).
        expect(times.slice(1).every((t, i) => t - times[i]! === step), what).toBe(true);
        expect(ticks.some((t) => t.outcome === 'MISSED'), what).toBe(false);
        // Fired (or skipped because a run was active) until the pause, then only PAUSED.
        const firstPaused = ticks.findIndex((t) => t.outcome === 'PAUSED');
        const live = firstPaused < 0 ? ticks : ticks.slice(0, firstPaused);
        expect(live.every((t) => t.outcome === 'FIRED' || t.outcome === 'SKIPPED_OVERLAP'), what).toBe(true);
        expect(ticks.slice(live.length).every((t) => t.outcome === 'PAUSED'), what).toBe(true);
        expect(live.length, what).toBeGreaterThanOrEqual(job.name === 'Skipping' ? 5 : 10);

        // Every FIRED tick has exactly one execution, of its own fire time; nothing else ran.
        const firedTicks = ticks.filter((t) => t.outcome === 'FIRED');
        fired += firedTicks.length;
        summary.push(`${job.name} ${firedTicks.length}/${live.length - firedTicks.length}/${ticks.length - live.length}`);
        const { rows: execs } = await pool.query<{ id: string; scheduled_for: Date; status: string; trigger: string; attempt: number }>(
          `select id, scheduled_for, status, trigger, attempt from executions where job_id = $1`,
          [job.id],
        );
        const byId = new Map(execs.map((e) => [e.id, e]));
        expect(firedTicks.every((t) => t.execution_id !== null), what).toBe(true);
        expect(new Set(firedTicks.map((t) => t.execution_id)).size, what).toBe(firedTicks.length);
        expect(execs.length, what).toBe(firedTicks.length);
        for (const t of firedTicks) {
          const e = byId.get(t.execution_id!);
          expect(e, what).toBeDefined();
          expect(e!.trigger).toBe('SCHEDULE');
          expect(new Date(e!.scheduled_for).getTime()).toBe(new Date(t.fire_time).getTime());
        }
        // Nothing lost: every run finished, and (noop steps cannot fail) succeeded.
        expect(execs.filter((e) => e.status !== 'SUCCEEDED'), what).toEqual([]);
        expect(await overlappingPairs(pool, job.id), what).toBe(0);

        // API 2 answers the same history over GraphQL.
        const { executions } = await two.request(ExecutionsDocument, { jobId: job.id, first: 100 });
        expect(executions.edges.length).toBe(Math.min(execs.length, 100));
        expect(executions.edges.every((edge) => edge.node.status === 'SUCCEEDED')).toBe(true);
      }
      expect(fired, summary.join(', ')).toBeGreaterThan(30);
      const { rows: requeued } = await pool.query<{ n: number }>(`select count(*)::int as n from executions where attempt > 1`);
      // A run on a killed worker comes back as its next attempt (and not as a second execution).
      if (killedRunning > 0) expect(requeued[0]!.n).toBeGreaterThanOrEqual(1);
      const { jobs: listed } = await two.request(JobsDocument, { first: 10 });
      expect(listed.edges.map((e) => [e.node.name, e.node.paused])).toEqual(
        ['Queued', 'Skipping', 'TickA', 'TickB', 'TickC'].map((n) => [n, true]),
      );

      // API 2's subscriber saw every execution's final status, though none ran in its process.
      await waitFor(async () => {
        const { rows } = await pool.query<{ id: string }>(`select id from executions`);
        return rows.every((r) => lastSeen.get(r.id) === 'SUCCEEDED') ? true : undefined;
      }, 10_000, `API 2's subscriber to see every final status (saw ${events} events for ${lastSeen.size} executions)`);
      console.error(
        `scale-out: ${fired} fired ticks (per job fired/skipped/paused: ${summary.join(', ')}), ${requeued[0]!.n} re-queued attempts (${killedRunning} running on the killed workers), ` +
          `leader ${leaderName} -> ${newLeader}, ${events} events on API 2, ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
    } finally {
      await one.close();
      await two.close();
    }
  }, 90_000);
});
