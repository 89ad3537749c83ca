import { quickAddJob, Logger } from 'graphile-worker';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPgCluster, type PgCluster } from '../chaos/lib/pgCluster.js';
import { SupervisedRunner } from '../src/worker/supervisedRunner.js';
import { waitFor } from './helpers/kiln.js';

const silent = new Logger(() => () => {});

// graphile-worker 0.18 shuts its pool down for good when a job's completion fails (Postgres went
// away between the task's end and its completion). On a cluster of its own, a task crashes
// Postgres as it returns: the runner must come back by itself once Postgres does, with the entry
// the dead pool still had locked released and run again.
describe('SupervisedRunner', () => {
  let cluster: PgCluster;
  let url: string;
  let pool: pg.Pool;
  let runner: SupervisedRunner | null = null;
  beforeAll(async () => {
    cluster = await startPgCluster();
    url = await cluster.createDatabase('kiln_supervised');
    pool = new pg.Pool({ connectionString: url, max: 6 });
    pool.on('error', () => {});
  });
  afterAll(async () => {
    await runner?.stop().catch(() => {});
    await pool?.end().catch(() => {});
    await cluster?.destroy();
  });

  it('starts a runner again after its pool shut down on a failed completion, and the stuck entry runs again', async () => {
    const runs: string[] = [];
    const logs: string[] = [];
    let crashed = false;
    runner = await SupervisedRunner.start(
      'test',
      {
        pgPool: pool, noHandleSignals: true, pollInterval: 200, concurrency: 1, logger: silent,
        preset: { worker: { completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
        taskList: {
          crash: async (payload) => {
            runs.push(`crash ${(payload as { n: number }).n}`);
            if (!crashed) {
              crashed = true;
              await cluster.stop('immediate'); // the completion that follows cannot reach Postgres
            }
          },
          after: async () => void runs.push('after'),
        },
      },
      pool,
      (m) => logs.push(m),
    );
    await quickAddJob({ connectionString: url }, 'crash', { n: 1 });
    await waitFor(async () => (logs.some((l) => /stopped by itself/.test(l)) ? true : undefined), 30_000, 'the pool to shut down');
    // While Postgres is down the restart keeps failing and backing off; then it comes back.
    await cluster.start();
    await waitFor(async () => (logs.some((l) => /running again/.test(l)) ? true : undefined), 30_000, 'the runner to start again');
    await quickAddJob({ connectionString: url }, 'after', {});
    await waitFor(async () => (runs.includes('after') ? true : undefined), 30_000, 'a job after the restart');
    // The entry whose completion failed was locked by the dead pool: unlocked, it ran once more.
    await waitFor(async () => (runs.filter((r) => r === 'crash 1').length === 2 ? true : undefined), 30_000, 'the stuck entry to run again');
    // ... and every entry is completed (removed) by the new pool.
    const left = await waitFor(async () => {
      const { rows } = await pool.query(`select count(*)::int as n from graphile_worker.jobs`);
      return rows[0].n === 0 ? 0 : undefined;
    }, 30_000, 'the queue to empty');
    expect(left).toBe(0);
    await runner.stop();
    runner = null;
  });
});
