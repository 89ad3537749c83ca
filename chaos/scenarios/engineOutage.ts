import { setTimeout as delay } from 'node:timers/promises';
import type { Row } from '../lib/checker.js';
import { startDockerd, stopDockerd } from '../lib/dockerd.js';
import { jobsFile, numberedStep, type KilnProcess } from '../lib/kiln.js';
import type { ScenarioRun } from '../lib/world.js';

const DOWN_MS = 60_000;
const JOBS = 20;
/** Every job submitted while the engine is down must have SUCCEEDED this long after it answers again. */
const MAX_AFTER_RETURN_MS = 30_000;

/** The URL of a worker's own listener, from the line it logs once it listens (after "running"). */
function opsUrl(run: ScenarioRun, w: KilnProcess): Promise<string> {
  return run.waitFor(`worker ${w.name}'s health listener`, 15_000, async () => /health and metrics at (http:\/\/[^\s"]+) \(/.exec(w.output())?.[1]);
}

/** What one worker's /readyz said while the engine was down: whether it named the engine, and a sample. */
interface ReadyzSeen {
  probes: number;
  namedEngine: number;
  sample: string;
}

async function probeReadyz(url: string, seen: ReadyzSeen): Promise<void> {
  const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) }).catch(() => null);
  if (res === null) return;
  const body = (await res.json().catch(() => ({}))) as { checks?: Record<string, string>; failed?: string[] };
  seen.probes++;
  // /readyz names the failed check, never its reason (docs/design.md#configuration-checks): the
  // reason, "the Docker engine at … is not reachable", is the worker's log line.
  if (res.status === 503 && body.checks?.docker === 'failed' && body.failed?.includes('docker')) {
    seen.namedEngine++;
    seen.sample = JSON.stringify(body);
  }
}

/**
 * The machine's Docker engine stopped for 60 s while 20 one-off jobs are submitted (one every
 * 2.5 s), with two workers: no execution may end FAILED (nor even start: there is no engine), each
 * worker's /readyz names the engine while it is down, and every job SUCCEEDS within 30 s of the
 * engine's return. Recovery: from `docker info` answering again to the last job SUCCEEDED.
 */
export async function engineOutage(run: ScenarioRun): Promise<Row> {
  const workers = [await run.startWorker('w1', { KILN_WORKER_PORT: '0' }), await run.startWorker('w2', { KILN_WORKER_PORT: '0' })];
  const seen = new Map<string, { url: string; readyz: ReadyzSeen }>();
  for (const w of workers) seen.set(w.name, { url: await opsUrl(run, w), readyz: { probes: 0, namedEngine: 0, sample: '' } });
  const failures: string[] = [];
  const ids: string[] = [];
  const stopped = await stopDockerd();
  let back: Awaited<ReturnType<typeof startDockerd>>;
  try {
    const probing = (async () => {
      while (Date.now() - stopped.exitedAt < DOWN_MS - 2000) {
        await Promise.all([...seen.values()].map((w) => probeReadyz(w.url, w.readyz)));
        await delay(1000);
      }
    })();
    for (let i = 0; i < JOBS; i++) {
      ids.push(...(await run.client.submit(jobsFile([{ name: `Outage-${i}`, retries: 0, steps: [numberedStep('o', 20)] }]))));
      await delay((DOWN_MS - 10_000) / JOBS);
    }
    await probing;
    await delay(Math.max(0, DOWN_MS - (Date.now() - stopped.exitedAt)));
    const { rows } = await run.pool.query<{ status: string; n: number }>(`select status, count(*)::int as n from executions group by status`);
    const during = rows.map((r) => `${r.status}: ${r.n}`).join(', ');
    if (rows.some((r) => r.status !== 'QUEUED')) failures.push(`while the engine was down, executions left QUEUED: ${during}`);
    const { rows: started } = await run.pool.query<{ n: number }>(`select count(*)::int as n from execution_attempts`);
    if (started[0]!.n > 0) failures.push(`${started[0]!.n} attempt(s) started while the engine was down`);
  } finally {
    // Always: other tests on this machine use this engine.
    back = await startDockerd(stopped);
  }
  await run.waitFor('every job to end', 120_000, async () => {
    const { rows } = await run.pool.query<{ n: number }>(`select count(*)::int as n from executions where status in ('QUEUED', 'RUNNING')`);
    return rows[0]!.n === 0;
  }, 250).catch(() => undefined);
  const { rows: ends } = await run.pool.query<{ id: string; status: string; attempt: number; error: string | null; after: number | null }>(
    `select id, status, attempt, error, (extract(epoch from finished_at) * 1000 - $1)::float8 as after from executions`,
    [back.answeringAt],
  );
  for (const e of ends) {
    if (e.status !== 'SUCCEEDED') failures.push(`execution ${e.id} ${e.status} at attempt ${e.attempt}: ${e.error}`);
    else if (e.after !== null && e.after > MAX_AFTER_RETURN_MS) failures.push(`execution ${e.id} SUCCEEDED ${Math.round(e.after)} ms after the engine's return`);
  }
  if (ends.length !== JOBS) failures.push(`${ends.length} executions for ${JOBS} jobs`);
  const notes = [
    `dockerd down ${Math.round((back.answeringAt - stopped.termAt) / 1000)} s (SIGTERM to docker info answering); ${JOBS} jobs submitted meanwhile`,
  ];
  for (const [name, w] of seen) {
    if (w.readyz.namedEngine === 0) failures.push(`worker ${name}: /readyz never named the engine while it was down (${w.readyz.probes} probes)`);
    else notes.push(`${name} /readyz: 503 naming the engine in ${w.readyz.namedEngine}/${w.readyz.probes} probes, e.g. "${w.readyz.sample}"`);
    const said = workers.find((x) => x.name === name)!.output().split('\n').filter((l) => /the Docker engine at \S+ (is not reachable|does not answer)/.test(l)).length;
    if (said !== 1) failures.push(`worker ${name} said the engine was unreachable ${said} times in its log (expected once)`);
  }
  const latest = Math.max(0, ...ends.map((e) => e.after ?? 0));
  notes.push(`last job SUCCEEDED ${(latest / 1000).toFixed(1)} s after the engine answered; final attempts: ${[...new Set(ends.map((e) => e.attempt))].join(', ')}`);
  return run.check({
    acked: ids.map((jobId) => ({ jobId, trigger: 'SUBMIT' as const, count: 1 })),
    recoveryMs: [latest],
    maxRecoveryMs: MAX_AFTER_RETURN_MS,
    failures,
    notes,
  });
}
