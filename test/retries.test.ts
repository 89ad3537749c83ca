import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retryDelayMs } from '../src/executions/finish.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { submit } from './helpers/ledger.js';

describe('retries', () => {
  let k: TestKiln;
  beforeAll(async () => {
    k = await startTestKiln({ env: { KILN_EXECUTOR: 'noop', KILN_RETRY_BASE_MS: '300' } });
  });
  afterAll(() => k?.stop());

  it('backs off exponentially', () => {
    expect([1, 2, 3].map((n) => retryDelayMs(300, n))).toEqual([300, 600, 1200]);
    expect(retryDelayMs(2000, 30)).toBe(600_000);
  });

  it('re-runs a failed execution `retries` times with backoff, each retry linked to the first', async () => {
    const token = await k.token('alice');
    const [jobId] = await submit(k.gql, token, 'jobs:\n  - name: Flaky\n    retries: 2\n    steps: [{run: "exit 1"}]\n');
    const pool = k.kiln.deps.pool;
    const rows = await waitFor(async () => {
      const { rows } = await pool.query<{ id: string; number: number; trigger: string; status: string; retry_of: string | null; retry_number: number; started_at: Date; finished_at: Date }>(
        `select id, number, trigger, status, retry_of, retry_number, started_at, finished_at from executions where job_id = $1 order by number`,
        [jobId],
      );
      return rows.length === 3 && rows.every((r) => r.status === 'FAILED') ? rows : undefined;
    }, 30_000, 'the first run and two retries to fail');
    expect(rows.map((r) => [r.number, r.trigger, r.retry_number])).toEqual([[1, 'SUBMIT', 0], [2, 'RETRY', 1], [3, 'RETRY', 2]]);
    expect(rows[1]!.retry_of).toBe(rows[0]!.id);
    expect(rows[2]!.retry_of).toBe(rows[0]!.id);
    expect(rows[1]!.started_at.getTime() - rows[0]!.finished_at.getTime()).toBeGreaterThanOrEqual(250);
    expect(rows[2]!.started_at.getTime() - rows[1]!.finished_at.getTime()).toBeGreaterThanOrEqual(550);
    await new Promise((r) => setTimeout(r, 2_000));
    const { rows: after } = await pool.query(`select count(*)::int as n from executions where job_id = $1`, [jobId]);
    expect(after[0].n).toBe(3);
  });

  it('does not retry a successful run', async () => {
    const token = await k.token('bob');
    const [jobId] = await submit(k.gql, token, 'jobs:\n  - name: Fine\n    retries: 3\n    steps: [{run: "true"}]\n');
    await waitFor(async () => {
      const { rows } = await k.kiln.deps.pool.query(`select status from executions where job_id = $1`, [jobId]);
      return rows[0]?.status === 'SUCCEEDED' ? true : undefined;
    }, 20_000, 'the run to succeed');
    await new Promise((r) => setTimeout(r, 1_000));
    const { rows } = await k.kiln.deps.pool.query(`select count(*)::int as n from executions where job_id = $1`, [jobId]);
    expect(rows[0].n).toBe(1);
  });
});
