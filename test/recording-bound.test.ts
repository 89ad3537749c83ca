import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClaimedExecution } from '../src/executions/fence.js';
import { Dispatcher } from '../src/worker/dispatcher.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { queueRunsOfNewJobs } from './helpers/runner.js';

/**
 * Runs whose work is over but whose outcome is not yet written are bounded per worker
 * (docs/design.md#dispatch): a dispatcher whose runs free their slot at once but whose outcomes
 * never get written stops claiming at four such runs per slot, and claims the rest once the
 * outcomes are written. Kiln runs without its worker role: this dispatcher is the only claimer.
 */
const SLOTS = 2;
const BOUND = SLOTS * (1 + 4);
const JOBS = 40;

describe('runs waiting for their outcome', () => {
  let k: TestKiln;
  let db: pg.Pool;
  beforeAll(async () => {
    k = await startTestKiln({ worker: false });
    db = new pg.Pool({ connectionString: k.databaseUrl, max: 2 });
    db.on('error', () => {});
  });
  afterAll(async () => {
    await db?.end();
    await k?.stop();
  });

  it('are at most four per slot: past that the worker claims nothing until outcomes are written', async () => {
    await queueRunsOfNewJobs(k, db, 'bound', { prefix: 'j', jobs: JOBS, run: 'true', runsPerJob: 1 });

    const started: ClaimedExecution[] = [];
    let release: () => void = () => {};
    const written = new Promise<void>((resolve) => (release = resolve));
    const dispatcher = new Dispatcher({
      pool: k.kiln.deps.pool,
      workerId: 'bound-worker',
      concurrency: SLOTS,
      leaseMs: 60_000,
      ownerCap: 0,
      pollIntervalMs: 200,
      // The work is over at once; the outcome "is being written" until released.
      run: async (claimed, slotFree) => {
        started.push(claimed);
        slotFree();
        await written;
        await db.query(`update executions set status = 'SUCCEEDED', finished_at = now(), lease_expires_at = null where id = $1`, [claimed.id]);
      },
      log: () => {},
    });
    await dispatcher.start();
    try {
      await waitFor(async () => (started.length >= BOUND ? true : undefined), 20_000, 'the bound to be reached');
      // Several poll intervals and wake-ups later, still no more than the bound.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(started.length).toBe(BOUND);
      expect(dispatcher.size).toBe(BOUND);
      const running = await db.query<{ n: number }>(`select count(*)::int as n from executions where status = 'RUNNING'`);
      expect(running.rows[0]!.n).toBe(BOUND);

      release();
      await waitFor(async () => (started.length === JOBS ? true : undefined), 20_000, 'every execution to be claimed once outcomes are written');
      expect(new Set(started.map((c) => c.id)).size).toBe(JOBS);
    } finally {
      release();
      await dispatcher.stop();
    }
  });
});
