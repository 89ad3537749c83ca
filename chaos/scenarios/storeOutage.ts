import { setTimeout as delay } from 'node:timers/promises';
import type { Row } from '../lib/checker.js';
import { jobsFile, numberedStep } from '../lib/kiln.js';
import type { ScenarioRun } from '../lib/world.js';

const OUTAGE_MS = 60_000;

/**
 * The S3-compatible store down for a minute while executions finish: every log must eventually be
 * archived, byte for byte equal to the stored lines, none lost. Recovery: the store back -> every
 * log archived.
 */
export async function storeOutage(run: ScenarioRun): Promise<Row> {
  await run.startWorker('w1');
  await run.startWorker('w2');
  const ids = await run.client.submit(jobsFile(Array.from({ length: 12 }, (_, i) => ({ name: `Archive-${i}`, steps: [numberedStep('a', 2000), numberedStep('b', 30, 10, 0.5)] }))));
  await run.waitFor('the first execution to start', 30_000, async () => {
    const { rows } = await run.pool.query(`select 1 from executions where status = 'RUNNING'`);
    return rows.length > 0;
  });
  await run.world.s3.pause();
  const downAt = Date.now();
  let finishedDuring = 0;
  try {
    await run.waitFor('every execution to finish while the store is down', OUTAGE_MS - 5000, async () => {
      const { rows } = await run.pool.query<{ n: number }>(`select count(*)::int as n from executions where status not in ('QUEUED', 'RUNNING')`);
      finishedDuring = rows[0]!.n;
      return finishedDuring === ids.length;
    }, 500).catch(() => undefined);
    const { rows } = await run.pool.query<{ n: number }>(`select count(*)::int as n from executions where log_key is not null`);
    if (rows[0]!.n > 0) throw new Error(`${rows[0]!.n} logs archived while the store was down`);
    await delay(Math.max(0, OUTAGE_MS - (Date.now() - downAt)));
  } finally {
    await run.world.s3.resume();
  }
  const upAt = Date.now();
  const { rows: failedTries } = await run.pool.query<{ n: number }>(
    `select coalesce(sum(archive_failures), 0)::int as n from executions where archive_due_at is not null`,
  ).catch(() => ({ rows: [{ n: -1 }] }));
  await run.waitFor('every log archived', 180_000, async () => {
    const { rows } = await run.pool.query<{ n: number }>(`select count(*)::int as n from executions where log_key is null`);
    return rows[0]!.n === 0;
  }, 250).catch(() => undefined);
  const archivedAfter = Date.now() - upAt;
  return run.check(
    {
      acked: ids.map((jobId) => ({ jobId, trigger: 'SUBMIT' as const, count: 1 })),
      recoveryMs: [archivedAfter],
      notes: [
        `store down ${Math.round((upAt - downAt) / 1000)} s; ${finishedDuring}/${ids.length} executions finished during the outage; ${failedTries[0]!.n} failed archive tries behind the archives still queued at the end of it; all archived ${(archivedAfter / 1000).toFixed(1)} s after the store came back`,
      ],
    },
    30_000,
  );
}
