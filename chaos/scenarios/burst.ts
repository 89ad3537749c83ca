import { setTimeout as delay } from 'node:timers/promises';
import type { Row } from '../lib/checker.js';
import { jobsFile, numberedStep } from '../lib/kiln.js';
import type { ScenarioRun } from '../lib/world.js';

const JOBS = 50;
const PER_JOB = 20;
const WORKERS = 3;
const CONCURRENCY = 3;

/** What each job does: most succeed, some fail (with one retry each), a few time out. */
function kindOf(i: number): 'ok' | 'fail' | 'timeout' {
  if (i % 10 === 3) return 'fail';
  if (i % 25 === 7) return 'timeout';
  return 'ok';
}

/**
 * A burst of 1,000 executions over 50 jobs (20 triggers each, `concurrency: queue`) with a mix of
 * outcomes, run through the real Docker engine by three workers: successes, failures retried
 * once, timeouts. Everything must run once per trigger (plus its retries), one at a time per job.
 */
export async function burst(run: ScenarioRun): Promise<Row> {
  for (let w = 1; w <= WORKERS; w++) await run.startWorker(`w${w}`, { KILN_WORKER_CONCURRENCY: String(CONCURRENCY) });
  const jobs = Array.from({ length: JOBS }, (_, i) => {
    const kind = kindOf(i);
    const name = `Burst-${String(i).padStart(2, '0')}-${kind}`;
    if (kind === 'fail') return { name, retries: 1, concurrency: 'queue', steps: [`${numberedStep('f', 3)}; exit 3`] };
    if (kind === 'timeout') return { name, timeout: '1s', concurrency: 'queue', steps: [`${numberedStep('t', 3)}; sleep 30`] };
    return { name, concurrency: 'queue', steps: [numberedStep('ok', 5)] };
  });
  // One-off jobs run once on submit: that run is the first of the job's 20.
  const ids = await run.client.submit(jobsFile(jobs));
  const t0 = Date.now();
  // `concurrency: queue` keeps at most one execution waiting per job: a trigger while one waits is
  // refused (CONFLICT, nothing stored), so each job's client triggers again once its last one started.
  const acked = new Map<string, number>();
  let failedRequests = 0;
  let conflicts = 0;
  let firstError = '';
  await Promise.all(
    ids.map(async (id) => {
      while ((acked.get(id) ?? 0) < PER_JOB - 1) {
        try {
          await run.client.gql(`mutation($id: ID!) { triggerJob(id: $id) { id } }`, { id });
          acked.set(id, (acked.get(id) ?? 0) + 1);
        } catch (err) {
          const message = (err as Error).message;
          if (message.includes('"CONFLICT"')) conflicts++;
          else {
            failedRequests++;
            firstError ||= message;
          }
          await delay(1000 + Math.random() * 500);
        }
      }
    }),
  );
  const submittedIn = Date.now() - t0;
  const done = await run.waitFor('the burst to finish', 900_000, async () => {
    const { rows } = await run.pool.query<{ n: number }>(`select count(*)::int as n from executions where status in ('QUEUED', 'RUNNING')`);
    return rows[0]!.n === 0 ? Date.now() : undefined;
  }, 1000);
  const { rows: outcomes } = await run.pool.query<{ kind: string; status: string; trigger: string; n: number }>(
    `select split_part(j.name, '-', 3) as kind, e.status, e.trigger, count(*)::int as n
       from executions e join jobs j on j.id = e.job_id group by 1, 2, 3 order by 1, 2, 3`,
  );
  const failures: string[] = [];
  for (const o of outcomes) {
    const expected = o.kind === 'ok' ? 'SUCCEEDED' : o.kind === 'fail' ? 'FAILED' : 'TIMED_OUT';
    if (o.status !== expected) failures.push(`${o.n} ${o.kind} execution(s) ended ${o.status}`);
  }
  const total = outcomes.reduce((n, o) => n + o.n, 0);
  return run.check(
    {
      acked: [
        ...ids.map((jobId) => ({ jobId, trigger: 'SUBMIT' as const, count: 1 })),
        ...ids.map((jobId) => ({ jobId, trigger: 'MANUAL' as const, count: acked.get(jobId) ?? 0 })),
      ],
      failures: failedRequests > 0 ? [...failures, `${failedRequests} trigger request(s) failed, first: ${firstError}`] : failures,
      notes: [
        `${total} executions (${outcomes.map((o) => `${o.kind}/${o.trigger}/${o.status}: ${o.n}`).join(', ')})`,
        `${WORKERS} workers x ${CONCURRENCY}; ${run.client.throttled} trigger(s) throttled (429) and resent; ${conflicts} trigger(s) refused while one waited (CONFLICT) and resent; triggers acknowledged in ${(submittedIn / 1000).toFixed(1)} s; all finished in ${((done - t0) / 1000).toFixed(0)} s (${((total * 1000) / (done - t0)).toFixed(1)} executions/s)`,
      ],
    },
    300_000,
  );
}
