import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';

/**
 * The attempt ledger (`execution_attempts`) is written by a statement-level trigger on executions
 * (migrations/Migration20261213000000_attemptsByStatement.ts): one row per attempt, opened when
 * an execution becomes RUNNING, closed with its outcome (LOST when a new attempt replaced it),
 * several executions per statement as a claim or a finish of many runs changes them, and gone
 * with its execution. Driven by SQL on an API-only Kiln, as the claim and the finish write.
 */
describe('the attempt ledger', () => {
  let k: TestKiln;
  let pool: pg.Pool;
  let token: string;
  let n = 0;

  async function newExecution(): Promise<{ jobId: string; executionId: string }> {
    const res = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id lastExecution { id } } } }`, { s: `jobs:\n  - name: Ledger${++n}\n    steps:\n      - run: "true"\n` }, token);
    const job = res.data!.submitJob.jobs[0];
    return { jobId: job.id, executionId: job.lastExecution.id };
  }

  async function attempts(executionId: string) {
    const { rows } = await pool.query<{ attempt: number; worker_id: string; outcome: string | null; closed: boolean }>(
      `select attempt, worker_id, outcome, finished_at is not null as closed from execution_attempts where execution_id = $1 order by attempt`,
      [executionId],
    );
    return rows;
  }

  beforeAll(async () => {
    k = await startTestKiln({ worker: false });
    pool = new pg.Pool({ connectionString: k.databaseUrl, max: 2 });
    token = await k.token('ledger');
  });

  afterAll(async () => {
    await pool?.end();
    await k?.stop();
  });

  it('opens and closes one row per attempt, for every execution a statement changes', async () => {
    const [a, b] = [await newExecution(), await newExecution()];
    const both = [a.executionId, b.executionId];
    // One statement claims both, as a claim of many runs does.
    await pool.query(`update executions set status = 'RUNNING', attempt = 1, worker_id = 'w1', started_at = now() where id = any($1::uuid[])`, [both]);
    expect(await attempts(a.executionId)).toEqual([{ attempt: 1, worker_id: 'w1', outcome: null, closed: false }]);
    expect(await attempts(b.executionId)).toEqual([{ attempt: 1, worker_id: 'w1', outcome: null, closed: false }]);
    // A statement that changes neither status nor attempt (a lease renewal) leaves the ledger alone.
    await pool.query(`update executions set lease_expires_at = now() + interval '1 minute' where id = any($1::uuid[])`, [both]);
    expect((await attempts(a.executionId))[0]!.closed).toBe(false);
    // a: claimed again by another worker under attempt 2 (the first attempt LOST), then ends;
    // b: ends; both in one statement each time.
    await pool.query(`update executions set attempt = 2, worker_id = 'w2' where id = $1`, [a.executionId]);
    await pool.query(
      `update executions set status = case when id = $1 then 'SUCCEEDED' else 'FAILED' end, finished_at = now() where id = any($2::uuid[])`,
      [a.executionId, both],
    );
    expect(await attempts(a.executionId)).toEqual([
      { attempt: 1, worker_id: 'w1', outcome: 'LOST', closed: true },
      { attempt: 2, worker_id: 'w2', outcome: 'SUCCEEDED', closed: true },
    ]);
    expect(await attempts(b.executionId)).toEqual([{ attempt: 1, worker_id: 'w1', outcome: 'FAILED', closed: true }]);
  });

  it("goes with its execution, also when the execution's job is deleted", async () => {
    const [a, b, kept] = [await newExecution(), await newExecution(), await newExecution()];
    const all = [a.executionId, b.executionId, kept.executionId];
    await pool.query(`update executions set status = 'RUNNING', attempt = 1, worker_id = 'w1', started_at = now() where id = any($1::uuid[])`, [all]);
    await pool.query(`delete from executions where id = $1`, [a.executionId]);
    const del = await k.gql(`mutation($id: ID!) { deleteJob(id: $id) }`, { id: b.jobId }, token);
    expect(del.data!.deleteJob).toBe(true);
    const { rows } = await pool.query(`select execution_id from execution_attempts where execution_id = any($1::uuid[])`, [all]);
    expect(rows).toEqual([{ execution_id: kept.executionId }]);
  });
});
