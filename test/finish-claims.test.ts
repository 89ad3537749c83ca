import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecutionTrigger } from '../src/entities/enums.js';
import { claimExecution } from '../src/executions/claim.js';
import { insertExecutions } from '../src/executions/create.js';
import type { ClaimedExecution } from '../src/executions/fence.js';
import { Finisher } from '../src/executions/finisher.js';
import { inTransaction } from '../src/util/sql.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { submitJob } from './helpers/runner.js';

/**
 * A run's end claims its slot's next execution in the statement that records it
 * (docs/design.md#dispatch). Kiln runs here without its worker role: this test is the only
 * worker, so every claim is one it made.
 */
const WORKER = 'finish-claims-worker';
const LEASE_MS = 60_000;
const SUCCEEDED = { status: 'SUCCEEDED' as const, exitCode: 0, error: null };

describe('a run\'s end claims its slot\'s next execution', () => {
  let k: TestKiln;
  let token: string;
  beforeAll(async () => {
    k = await startTestKiln({ worker: false });
    token = await k.token('finish-claims');
  });
  afterAll(async () => {
    await k?.stop();
  });

  const claim = async (id: string): Promise<ClaimedExecution> => {
    const r = await claimExecution(k.kiln.deps.pool, id, WORKER, LEASE_MS);
    if (r.kind !== 'claimed') throw new Error(`could not claim ${id}: ${r.kind}`);
    return r.execution;
  };
  const rowOf = async (id: string) =>
    (await k.kiln.deps.pool.query(`select status, worker_id, lease_expires_at > now() as leased from executions where id = $1`, [id])).rows[0];

  it('records the end, claims the next execution, and hands it over before the end resolves', async () => {
    const ending = await submitJob(k, token, 'jobs:\n  - name: Ending\n    steps: [{run: "true"}]\n');
    const next = await submitJob(k, token, 'jobs:\n  - name: Next\n    steps: [{run: "true"}]\n');
    const claimed = await claim(ending.executionId);
    const finisher = new Finisher(k.kiln.deps.pool);
    const order: string[] = [];
    const taken: ClaimedExecution[] = [];
    const asked: string[][] = [];
    finisher.attach({
      workerId: WORKER,
      leaseMs: LEASE_MS,
      wanted: (ids) => (asked.push([...ids]), ids.length),
      take: (c) => (order.push('take'), taken.push(...c)),
    });
    const recorded = await finisher.finish({ fence: claimed, outcome: SUCCEEDED, steps: [], lines: [] });
    order.push('resolved');
    expect(recorded).toBe(true);
    expect(asked).toEqual([[ending.executionId]]);
    expect(order).toEqual(['take', 'resolved']);
    expect(taken.map((c) => [c.id, c.jobId, c.attempt, c.workerId])).toEqual([[next.executionId, next.jobId, 1, WORKER]]);
    expect(await rowOf(ending.executionId)).toMatchObject({ status: 'SUCCEEDED', leased: null });
    expect(await rowOf(next.executionId)).toEqual({ status: 'RUNNING', worker_id: WORKER, leased: true });
  });

  it('still records the end when its claim fails: another worker claimed the chosen job meanwhile', async () => {
    const pool = k.kiln.deps.pool;
    // Two queued executions of one job, as catch-up runs (`misfire: run_all`) queue them.
    const queued = await submitJob(k, token, 'jobs:\n  - name: Twice\n    steps: [{run: "true"}]\n');
    const { rows: jobs } = await pool.query(`select id, owner, priority, definition from jobs where id = $1`, [queued.jobId]);
    const [created] = await inTransaction(pool, (sql) =>
      insertExecutions(sql, k.kiln.deps.config.defaultImage, [{ job: jobs[0], trigger: ExecutionTrigger.MANUAL }]),
    );
    const second = created!.id;
    const ending = await submitJob(k, token, 'jobs:\n  - name: Ending2\n    steps: [{run: "true"}]\n');
    const claimed = await claim(ending.executionId);
    // Another worker claims the job's second execution and has not committed yet: the finish's
    // claim, which chose the first, waits on that worker's new index entry, then fails.
    const other = new pg.Client({ connectionString: k.databaseUrl });
    await other.connect();
    try {
      await other.query('begin');
      await other.query(
        `update executions set status = 'RUNNING', worker_id = 'another-worker', started_at = now(), lease_expires_at = now() + interval '1 minute' where id = $1`,
        [second],
      );
      const finisher = new Finisher(pool);
      const taken: ClaimedExecution[] = [];
      finisher.attach({ workerId: WORKER, leaseMs: LEASE_MS, wanted: (ids) => ids.length, take: (c) => taken.push(...c) });
      const recorded = finisher.finish({ fence: claimed, outcome: SUCCEEDED, steps: [], lines: [] });
      await waitFor(
        async () =>
          (
            await pool.query(
              // The statement's text as Postgres shows it (the first 1,024 bytes): the finish that claims.
              `select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like 'with recursive f as%'`,
            )
          ).rows[0],
        10_000,
        'the finish\'s claim to wait on the other worker',
      );
      await other.query('commit');
      expect(await recorded).toBe(true);
      expect(taken).toEqual([]);
    } finally {
      await other.end();
    }
    expect(await rowOf(ending.executionId)).toMatchObject({ status: 'SUCCEEDED' });
    expect(await rowOf(queued.executionId)).toMatchObject({ status: 'QUEUED', worker_id: null });
    expect(await rowOf(second)).toMatchObject({ status: 'RUNNING', worker_id: 'another-worker' });
  });
});
