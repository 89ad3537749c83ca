import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { sleep, submit, ticksOf, type TickRow } from './helpers/ledger.js';

const ENV = { KILN_EXECUTOR: 'noop', KILN_WORKER_CONCURRENCY: '4', KILN_MISFIRE_GRACE_MS: '1500' };

describe('misfire policies after 10 s with no worker', () => {
  let first: TestKiln;
  let second: TestKiln;
  let token: string;
  const ids: Record<string, string> = {};
  const down = { from: 0, to: 0 };

  beforeAll(async () => {
    first = await startTestKiln({ env: ENV });
    token = await first.token('alice');
    const spec = (name: string, misfire: string) => `  - name: ${name}\n    schedule: "*/1 * * * * *"\n    misfire: ${misfire}\n    steps: [{run: "true"}]\n`;
    [ids.skip, ids.once, ids.all] = await submit(first.gql, token, `jobs:\n${spec('Skip', 'skip')}${spec('Once', 'run_once')}${spec('All', 'run_all')}`);
    await sleep(2_500);
    // Every worker stops (the only Kiln process); the jobs stay due.
    down.from = Date.now();
    await first.kiln.stop();
    await sleep(10_000);
    down.to = Date.now();
    second = await startTestKiln({ env: ENV, databaseUrl: first.databaseUrl });
    await sleep(4_000);
  }, 60_000);
  afterAll(async () => {
    await second?.stop();
    await first?.stop().catch(() => {});
  });

  /** Ticks whose fire time fell while nothing ran and that were reached more than the grace late. */
  const downtime = (ticks: TickRow[]) =>
    ticks.filter((t) => new Date(t.fire_time).getTime() > down.from + 1000 && new Date(t.fire_time).getTime() < down.to - 2000);

  it('skip: records the missed fire times as MISSED and runs nothing for them', async () => {
    const ticks = await ticksOf(second.kiln.deps.pool, ids.skip!);
    const missed = downtime(ticks);
    expect(missed.length).toBeGreaterThanOrEqual(6);
    expect(missed.every((t) => t.outcome === 'MISSED' && t.execution_id === null)).toBe(true);
    // Fire times after the restart fire normally again.
    expect(ticks[ticks.length - 1]!.outcome).toBe('FIRED');
  });

  it('run_once: runs exactly one catch-up for all the missed fire times', async () => {
    const ticks = await ticksOf(second.kiln.deps.pool, ids.once!);
    const missed = downtime(ticks);
    expect(missed.length).toBeGreaterThanOrEqual(6);
    const catchUps = ticks.filter((t) => t.catch_up && t.outcome === 'FIRED');
    expect(catchUps).toHaveLength(1);
    expect(catchUps[0]!.execution_id).not.toBeNull();
    expect(missed.filter((t) => t.outcome === 'MISSED').length).toBe(missed.length - (missed.includes(catchUps[0]!) ? 1 : 0));
  });

  it('run_all: runs each missed fire time, one after another', async () => {
    const pool = second.kiln.deps.pool;
    const ticks = await ticksOf(pool, ids.all!);
    const missed = downtime(ticks);
    expect(missed.length).toBeGreaterThanOrEqual(6);
    expect(missed.every((t) => t.outcome === 'FIRED' && t.catch_up && t.execution_id !== null)).toBe(true);
    const { rows } = await pool.query<{ status: string }>(`select status from executions where id = any($1::uuid[])`, [missed.map((t) => t.execution_id)]);
    expect(rows.every((r) => r.status === 'SUCCEEDED')).toBe(true);
  });

  it('accounts for every fire time of every job: no hole and no duplicate in the ledger', async () => {
    for (const id of Object.values(ids)) {
      const ticks = await ticksOf(second.kiln.deps.pool, id);
      const times = ticks.map((t) => new Date(t.fire_time).getTime());
      expect(times.slice(1).every((t, i) => t - times[i]! === 1000)).toBe(true);
    }
  });
});
