import type { Row } from '../lib/checker.js';
import { restartDockerd } from '../lib/dockerd.js';
import { jobsFile, numberedStep } from '../lib/kiln.js';
import type { ScenarioRun } from '../lib/world.js';

/**
 * The Docker daemon restarted while executions run (SIGTERM, wait for its exit, the same command
 * line again, detached, logging to the same file). A daemon restart is not the user's build
 * failing: Kiln must hand each interrupted execution to a next attempt (never record it FAILED,
 * never spend one of the job's retries), and every execution must then succeed.
 */
export async function dockerRestart(run: ScenarioRun): Promise<Row> {
  await run.startWorker('w1');
  await run.startWorker('w2');
  const ids = await run.client.submit(jobsFile([1, 2, 3].map((i) => ({ name: `Engine-${i}`, retries: 0, steps: [numberedStep('a', 150, 2, 0.1), numberedStep('b', 10)] }))));
  const running = await run.waitFor('three executions mid-step', 60_000, async () => {
    const { rows } = await run.pool.query<{ id: string; attempt: number }>(
      `select e.id, e.attempt from executions e where e.status = 'RUNNING'
          and exists (select 1 from log_chunks l where l.execution_id = e.id and l.stream = 'STDOUT')`,
    );
    return rows.length === 3 ? rows : undefined;
  });
  const restart = await restartDockerd();
  const notes = [
    `dockerd ${restart.oldPid} -> ${restart.newPid}: exited ${restart.exitedAt - restart.termAt} ms after SIGTERM, answering ${restart.answeringAt - restart.startedAt} ms after start`,
  ];
  await run.waitFor('the interrupted executions to be taken up again', 120_000, async () => {
    const { rows } = await run.pool.query<{ n: number }>(
      `select count(*)::int as n from unnest($1::uuid[]) as h(id) where exists (select 1 from execution_attempts a where a.execution_id = h.id and a.attempt > 1)
          or exists (select 1 from executions e where e.id = h.id and e.status not in ('QUEUED', 'RUNNING'))`,
      [running.map((r) => r.id)],
    );
    return rows[0]!.n === running.length;
  }, 100);
  const { rows: times } = await run.pool.query<{ at: Date }>(
    `select coalesce((select min(started_at) from execution_attempts a where a.execution_id = h.id and a.attempt > 1),
                     (select finished_at from executions e where e.id = h.id)) as at from unnest($1::uuid[]) as h(id)`,
    [running.map((r) => r.id)],
  );
  const recovery = Math.max(...times.map((t) => t.at.getTime() - restart.termAt));
  const failures: string[] = [];
  await run.waitFor('every execution to finish', 120_000, async () => {
    const { rows } = await run.pool.query<{ n: number }>(`select count(*)::int as n from executions where status in ('QUEUED', 'RUNNING')`);
    return rows[0]!.n === 0;
  }, 250);
  const { rows: ends } = await run.pool.query<{ id: string; status: string; trigger: string; attempt: number; error: string | null }>(
    `select id, status, trigger, attempt, error from executions`,
  );
  for (const e of ends) {
    if (e.trigger === 'RETRY') failures.push(`retry execution ${e.id}: the restart spent one of the job's retries`);
    else if (e.status !== 'SUCCEEDED') failures.push(`execution ${e.id} ${e.status} at attempt ${e.attempt}: ${e.error}`);
  }
  const { rows: lost } = await run.pool.query<{ outcome: string | null; n: number }>(
    `select outcome, count(*)::int as n from execution_attempts where execution_id = any($1::uuid[]) and attempt = 1 group by outcome`,
    [running.map((r) => r.id)],
  );
  notes.push(`attempt 1 outcomes: ${lost.map((l) => `${l.outcome}: ${l.n}`).join(', ')}; final attempts: ${ends.map((e) => e.attempt).join(', ')}`);
  notes.push('recovery measured from the SIGTERM to dockerd');
  return run.check({ acked: ids.map((jobId) => ({ jobId, trigger: 'SUBMIT' as const, count: 1 })), recoveryMs: [recovery], failures, notes });
}
