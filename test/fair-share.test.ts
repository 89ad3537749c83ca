import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { NoopBackend } from '../src/runner/noop.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { queueRunsOfNewJobs } from './helpers/runner.js';

/**
 * Fair dispatch between owners (docs/design.md#dispatch): owner A's thousand queued runs do not
 * hold back owner B's first one beyond one slot turnover, and with KILN_MAX_RUNNING_PER_OWNER no
 * owner ever has more running. Every figure is read from the executions and execution_attempts
 * rows Kiln writes, not from what the test believes it did.
 */

const SLOTS = 4;
const RUN_SECONDS = 0.3;
const A_JOBS = 100;
const RUNS_PER_JOB = 10;

const kilns: TestKiln[] = [];
afterEach(async () => {
  for (const k of kilns.splice(0).reverse()) await k.stop();
});

/** Most executions of `owner` running at one instant, from the attempts ledger (start/end intervals). */
async function maxConcurrent(db: pg.Pool, owner: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `with edges as (
       select a.started_at as t, 1 as d from execution_attempts a join executions e on e.id = a.execution_id where e.owner = $1
       union all
       select coalesce(a.finished_at, now()), -1 from execution_attempts a join executions e on e.id = a.execution_id where e.owner = $1
     )
     select coalesce(max(running), 0)::int as n from (select sum(d) over (order by t, d) as running from edges) s`,
    [owner],
  );
  return rows[0]!.n;
}

async function scenario(env: Record<string, string>): Promise<{ db: pg.Pool; bob: { queued: Date; started: Date; aliceStartsBetween: number } }> {
  // The runs are queued with no worker up, then a worker starts on the same database.
  const api = await startTestKiln({ worker: false, env });
  kilns.push(api);
  const db = new pg.Pool({ connectionString: api.databaseUrl, max: 2 });
  db.on('error', () => {}); // the database is dropped when the test's Kilns stop
  // A's 1,000 runs (10 of each of 100 jobs), queued in one transaction.
  await queueRunsOfNewJobs(api, db, 'alice', { prefix: 'a', jobs: A_JOBS, run: `sleep ${RUN_SECONDS}`, runsPerJob: RUNS_PER_JOB });
  const worker = await startTestKiln({ api: false, databaseUrl: api.databaseUrl, backend: new NoopBackend(), env: { ...env, KILN_WORKER_CONCURRENCY: String(SLOTS) } });
  kilns.push(worker);
  await waitFor(async () => ((await db.query(`select count(*)::int as n from executions where status <> 'QUEUED'`)).rows[0].n >= 2 * SLOTS ? true : undefined), 30_000, "alice's runs to be under way");
  const bobToken = await api.token('bob');
  const res = await api.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { lastExecution { id } } } }`, { s: 'jobs:\n  - name: b\n    steps: [{run: "true"}]\n' }, bobToken);
  const bobRun = res.data!.submitJob.jobs[0].lastExecution.id as string;
  const started = await waitFor(
    async () => (await db.query(`select queued_at, started_at from executions where id = $1 and started_at is not null`, [bobRun])).rows[0],
    30_000,
    "bob's run to start",
  );
  const { rows } = await db.query<{ n: number }>(
    `select count(*)::int as n from execution_attempts a join executions e on e.id = a.execution_id
      where e.owner = 'alice' and a.started_at > $1 and a.started_at < $2`,
    [started.queued_at, started.started_at],
  );
  return { db, bob: { queued: started.queued_at, started: started.started_at, aliceStartsBetween: rows[0]!.n } };
}

describe('fair dispatch between owners', () => {
  it("starts another owner's first run within one slot turnover of a thousand queued runs", async () => {
    const { db, bob } = await scenario({});
    try {
      // First come, first served would run all of alice's thousand first (over a minute here).
      expect(bob.aliceStartsBetween).toBeLessThanOrEqual(SLOTS);
      expect(bob.started.getTime() - bob.queued.getTime()).toBeLessThan(RUN_SECONDS * 1000 * 2 + 2000);
      const { rows } = await db.query(`select count(*)::int as n from executions where owner = 'alice' and status = 'QUEUED'`);
      expect(rows[0].n).toBeGreaterThan(A_JOBS * RUNS_PER_JOB / 2); // most of alice's runs were still waiting
    } finally {
      await db.end();
    }
  }, 120_000);

  it('never lets an owner run more than KILN_MAX_RUNNING_PER_OWNER at once, and still serves the others', async () => {
    const cap = 3;
    const { db, bob } = await scenario({ KILN_MAX_RUNNING_PER_OWNER: String(cap) });
    try {
      // Let alice's runs go on for a while under the cap, then read the ledger.
      await new Promise((r) => setTimeout(r, 3000));
      const { rows } = await db.query(`select count(*)::int as n from execution_attempts a join executions e on e.id = a.execution_id where e.owner = 'alice'`);
      expect(rows[0].n).toBeGreaterThan(2 * cap); // slots kept turning over
      expect(await maxConcurrent(db, 'alice')).toBe(cap);
      expect(bob.started.getTime() - bob.queued.getTime()).toBeLessThan(RUN_SECONDS * 1000 * 2 + 2000);
    } finally {
      await db.end();
    }
  }, 120_000);
});
