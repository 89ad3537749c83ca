import { setTimeout as delay } from 'node:timers/promises';
import type { Row } from '../lib/checker.js';
import { jobsFile, numberedStep } from '../lib/kiln.js';
import { startTcpProxy } from '../lib/proxy.js';
import type { ScenarioRun } from '../lib/world.js';

const LEASE_MS = 6000;
/** Longer than the lease: the execution must be taken over meanwhile. */
const CUT_MS = 12_000;

/**
 * The link between one worker and Postgres cut for longer than the lease (a TCP proxy severs
 * every connection and refuses new ones, then heals). Expected: the cut worker kills its container
 * BEFORE anyone takes over (engine and database timestamps: container death < the next attempt's
 * start), the execution is re-run as attempt 2 by the other worker, no overlap.
 */
export async function partition(run: ScenarioRun): Promise<Row> {
  const proxy = await startTcpProxy({ host: '127.0.0.1', port: run.world.pg.port });
  const failures: string[] = [];
  const notes: string[] = [];
  try {
    const viaProxy = new URL(run.databaseUrl);
    viaProxy.port = String(proxy.port);
    await run.startWorker('w-cut', { DATABASE_URL: viaProxy.toString(), KILN_LEASE_MS: String(LEASE_MS) });
    const [jobId] = await run.client.submit(jobsFile([{ name: 'Partitioned', steps: [numberedStep('a', 200, 2, 0.1), numberedStep('b', 20)] }]));
    const exec = await run.waitFor('the execution RUNNING on w-cut, mid-step', 30_000, async () => {
      const { rows } = await run.pool.query<{ id: string; worker_id: string }>(
        `select e.id, e.worker_id from executions e where e.job_id = $1 and e.status = 'RUNNING'
            and exists (select 1 from log_chunks l where l.execution_id = e.id and l.stream = 'STDOUT')`,
        [jobId],
      );
      return rows[0];
    });
    if (exec.worker_id !== 'w-cut') failures.push(`attempt 1 ran on ${exec.worker_id}, not w-cut`);
    await run.startWorker('w-ok', { KILN_LEASE_MS: String(LEASE_MS) });
    const cutAt = Date.now();
    proxy.sever();
    await delay(CUT_MS);
    proxy.heal();
    const healedAt = Date.now();
    const a2 = await run.waitFor('attempt 2 to start', 30_000, async () => {
      const { rows } = await run.pool.query<{ worker_id: string; started_at: Date }>(
        `select worker_id, started_at from execution_attempts where execution_id = $1 and attempt = 2`,
        [exec.id],
      );
      return rows[0];
    });
    const c1 = await run.waitFor('the engine to report attempt 1\'s container dead', 30_000, async () =>
      run.world.recorder.of(await run.installationId()).find((c) => c.executionId === exec.id && c.attempt === 1 && c.diedAt !== null),
    );
    const lostLine = run.workers.get('w-cut')!.output().split('\n').find((l) => l.includes(`lease of execution ${exec.id} lost`));
    const lostAt = lostLine ? Date.parse(/"time":"([^"]+)"/.exec(lostLine)?.[1] ?? /^(\S+)/.exec(lostLine)?.[1] ?? '') : NaN;
    const started2 = a2.started_at.getTime();
    notes.push(
      `cut at 0 for ${CUT_MS} ms: w-cut gave up its lease at +${lostAt - cutAt} ms, its container died at +${c1.diedAt! - cutAt} ms` +
        ` (removed at +${(c1.destroyedAt ?? NaN) - cutAt} ms), attempt 2 started on ${a2.worker_id} at +${started2 - cutAt} ms; healed at +${healedAt - cutAt} ms`,
    );
    if (!(c1.diedAt! < started2)) failures.push(`attempt 1's container died ${c1.diedAt! - started2} ms AFTER attempt 2 started`);
    if (a2.worker_id !== 'w-ok') failures.push(`attempt 2 ran on ${a2.worker_id}, not w-ok`);
    const final = await run.waitFor('the execution to finish', 60_000, async () => {
      const { rows } = await run.pool.query<{ status: string; attempt: number }>(
        `select status, attempt from executions where id = $1 and status not in ('QUEUED', 'RUNNING')`,
        [exec.id],
      );
      return rows[0];
    });
    if (final.status !== 'SUCCEEDED' || final.attempt !== 2) failures.push(`the execution ended ${final.status} at attempt ${final.attempt} (expected SUCCEEDED at 2)`);
    // The healed worker is usable again.
    if (run.workers.get('w-cut')!.exited()) failures.push('w-cut exited after the link healed');
    return await run.check({ acked: [{ jobId: jobId!, trigger: 'SUBMIT', count: 1 }], recoveryMs: [started2 - cutAt], failures, notes });
  } finally {
    await proxy.close();
  }
}
