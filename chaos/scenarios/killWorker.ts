import { setTimeout as delay } from 'node:timers/promises';
import type { Row } from '../lib/checker.js';
import { jobsFile, numberedStep } from '../lib/kiln.js';
import type { ScenarioRun } from '../lib/world.js';

const ROUNDS = 3;
/** docs/design.md#leases: a dead worker's run is re-queued as its next attempt within 15 s. */
const MAX_RECOVERY_MS = 15_000;

/**
 * SIGKILL a worker mid-step, three times at random moments; a second worker stays up and a
 * replacement is started each time. Recovery time: the kill -> every execution it ran is RUNNING
 * as its next attempt (or finished).
 */
export async function killWorker(run: ScenarioRun): Promise<Row> {
  await run.startWorker('w1');
  await run.startWorker('w2');
  const acked: Array<{ jobId: string; trigger: 'SUBMIT'; count: number }> = [];
  const recoveryMs: number[] = [];
  const notes: string[] = [];
  let generation = 3;
  for (let round = 1; round <= ROUNDS; round++) {
    const jobs = [1, 2, 3].map((i) => ({
      name: `Kill${round}-${i}`,
      steps: [numberedStep('a', 30, 3, 0.2), numberedStep('b', 30, 3, 0.2)],
    }));
    for (const id of await run.client.submit(jobsFile(jobs))) acked.push({ jobId: id, trigger: 'SUBMIT', count: 1 });
    // Mid-step: an execution is RUNNING and has printed some of its numbered lines.
    const victimRow = await run.waitFor('an execution mid-step', 30_000, async () => {
      const { rows } = await run.pool.query<{ worker_id: string }>(
        `select e.worker_id from executions e where e.status = 'RUNNING'
            and exists (select 1 from log_chunks l where l.execution_id = e.id and l.stream = 'STDOUT')
          order by random() limit 1`,
      );
      return rows[0];
    });
    await delay(200 + Math.random() * 2000);
    const victim = run.workers.get(victimRow.worker_id)!;
    const { rows: held } = await run.pool.query<{ id: string; attempt: number }>(
      `select id, attempt from executions where status = 'RUNNING' and worker_id = $1`,
      [victim.name],
    );
    victim.kill();
    const killedAt = Date.now();
    run.workers.delete(victim.name);
    notes.push(`round ${round}: killed ${victim.name} running ${held.length} execution(s)`);
    const replacement = run.startWorker(`w${generation++}`);
    // Next attempt RUNNING or finished, for every execution the victim held.
    await run.waitFor('the killed worker\'s executions to recover', 60_000, async () => {
      const { rows } = await run.pool.query<{ n: number }>(
        `select count(*)::int as n from unnest($1::uuid[], $2::int[]) as h(id, attempt)
          where exists (select 1 from execution_attempts a where a.execution_id = h.id and a.attempt > h.attempt)
             or exists (select 1 from executions e where e.id = h.id and e.status in ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'))`,
        [held.map((h) => h.id), held.map((h) => h.attempt)],
      );
      return rows[0]!.n === held.length;
    }, 50);
    // The database's own times: the earliest moment each execution was taken up again.
    const { rows: times } = await run.pool.query<{ at: Date }>(
      `select coalesce((select min(a.started_at) from execution_attempts a where a.execution_id = h.id and a.attempt > h.attempt),
                       (select e.finished_at from executions e where e.id = h.id)) as at
         from unnest($1::uuid[], $2::int[]) as h(id, attempt)`,
      [held.map((h) => h.id), held.map((h) => h.attempt)],
    );
    const worst = Math.max(0, ...times.map((t) => t.at.getTime() - killedAt));
    recoveryMs.push(worst);
    await replacement;
  }
  return run.check({ acked, recoveryMs, maxRecoveryMs: MAX_RECOVERY_MS, notes });
}
