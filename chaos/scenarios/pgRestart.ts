import { setTimeout as delay } from 'node:timers/promises';
import type { Row } from '../lib/checker.js';
import { jobsFile, numberedStep } from '../lib/kiln.js';
import type { ScenarioRun } from '../lib/world.js';

const JOBS = 200;
const IN_FLIGHT = 6;
/** The crash comes after this many acknowledged submits. */
const CRASH_AFTER = 60;

/**
 * `pg_ctl restart -m immediate` (a crash: no shutdown checkpoint, WAL replay) while 200 one-off
 * jobs are submitted over REST and run. Every acknowledged submit must run to an end; the client
 * retries unacknowledged ones until acknowledged and counts them.
 */
export async function pgRestart(run: ScenarioRun): Promise<Row> {
  await run.startWorker('w1', { KILN_WORKER_CONCURRENCY: '3' });
  await run.startWorker('w2', { KILN_WORKER_CONCURRENCY: '3' });
  const acked = new Map<string, number>();
  const unknown = new Map<string, number>();
  let retries = 0;
  let unknownOutcomes = 0;
  const statuses = new Map<string, number>();
  let ackCount = 0;
  let crash: Promise<void> | null = null;
  let crashAt = 0;
  let crashDoneAt = 0;
  const names = Array.from({ length: JOBS }, (_, i) => `Submit-${String(i).padStart(3, '0')}`);
  // A submit is retried with the same file: resubmitting a one-off job updates it and queues it again.
  const submitUntilAcked = async (name: string) => {
    const yaml = jobsFile([{ name, steps: [numberedStep('x', 20, 10, 0.1)] }]);
    let unknownHere = 0;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) retries++;
      let outcome: string;
      try {
        const r = await run.client.submitRest(yaml);
        outcome = String(r.status);
        if (r.jobIds.length === 1) {
          ackCount++;
          acked.set(r.jobIds[0]!, (acked.get(r.jobIds[0]!) ?? 0) + 1);
          // Outcomes not known earlier count against this job id: they may have committed.
          if (unknownHere > 0) unknown.set(r.jobIds[0]!, (unknown.get(r.jobIds[0]!) ?? 0) + unknownHere);
          statuses.set(outcome, (statuses.get(outcome) ?? 0) + 1);
          return;
        }
        // 4xx never commits; 5xx may have (the commit's answer lost with the connection).
        if (r.status >= 500) unknownHere++;
      } catch (err) {
        outcome = (err as Error).name;
        unknownHere++;
      }
      if (outcome !== '201') unknownOutcomes++;
      statuses.set(outcome, (statuses.get(outcome) ?? 0) + 1);
      await delay(200);
    }
  };
  const queue = [...names];
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
        await submitUntilAcked(name);
        if (crash === null && ackCount >= CRASH_AFTER) {
          crashAt = Date.now();
          crash = run.world.pg.restart('immediate').then(() => void (crashDoneAt = Date.now()));
        }
      }
    }),
  );
  await crash;
  // Recovery: from the crash to every acknowledged job's execution finished.
  const ids = [...acked.keys()];
  await run.waitFor('every acknowledged job to finish', 240_000, async () => {
    const { rows } = await run.pool.query<{ n: number }>(
      `select count(distinct job_id)::int as n from executions where job_id = any($1::uuid[]) and status in ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT')`,
      [ids],
    );
    return rows[0]!.n === ids.length;
  }, 500);
  const allDone = Date.now();
  const { rows: bad } = await run.pool.query<{ status: string; n: number }>(
    `select status, count(*)::int as n from executions where status <> 'SUCCEEDED' group by status`,
  );
  return run.check({
    acked: ids.map((jobId) => ({ jobId, trigger: 'SUBMIT' as const, count: acked.get(jobId)!, unknown: unknown.get(jobId) ?? 0 })),
    failures: bad.map((b) => `${b.n} execution(s) ${b.status} (expected SUCCEEDED)`),
    notes: [
      `${JOBS} jobs acknowledged; ${retries} resubmits after ${unknownOutcomes} unacknowledged request(s) (${[...statuses].map(([s, n]) => `${s}: ${n}`).join(', ')})`,
      `postgres down ${crashDoneAt - crashAt} ms (restart -m immediate after ${CRASH_AFTER} acks); all done ${Math.round((allDone - crashAt) / 1000)} s after the crash`,
    ],
  });
}
