import { randomUUID } from 'node:crypto';
import type Dockerode from 'dockerode';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerBackend } from '../src/runner/docker/docker.js';
import { INSTALLATION_LABEL, installationId } from '../src/runner/installation.js';
import { DEADLINE_LABEL, orphanReason } from '../src/runner/reaper.js';
import type { ContainerHandle } from '../src/runner/types.js';
import { requireDocker, TEST_IMAGE, TEST_LABEL, testContainerConfig } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';

const FAR = '9999999999999';

describe('orphanReason', () => {
  const me = 'worker-me';
  const labels = (over: Record<string, string> = {}) => ({ 'kiln.execution': 'e1', 'kiln.attempt': '1', 'kiln.worker': 'worker-other', [DEADLINE_LABEL]: FAR, ...over });
  const running = { id: 'e1', status: 'RUNNING', attempt: 1, worker_id: 'worker-other', lease_live: true };
  const ctx = { workerId: me, now: Date.now(), runsHere: (id: string) => id === 'mine' };

  it.each([
    ['a live worker running that attempt', labels(), running, null],
    ['a worker whose lease expired (dead)', labels(), { ...running, lease_live: false }, 'its worker worker-other is dead (its lease expired)'],
    ['an execution that was deleted', labels(), undefined, 'its execution no longer exists'],
    ['an execution that finished', labels(), { ...running, status: 'FAILED' }, 'its execution is FAILED'],
    ['an earlier attempt', labels(), { ...running, attempt: 2 }, 'its execution is at attempt 2'],
    ['an attempt taken over by another worker', labels(), { ...running, worker_id: 'worker-new' }, 'its execution is run by worker-new'],
    ['a container past its deadline', labels({ [DEADLINE_LABEL]: '1' }), running, 'it is past its deadline'],
    ['this worker, running it', labels({ 'kiln.worker': me, 'kiln.execution': 'mine' }), undefined, null],
    ['this worker, no longer running it', labels({ 'kiln.worker': me }), running, 'this worker is not running its execution any more'],
    ['no execution label', { 'kiln.worker': 'x' }, undefined, 'it has no execution or worker label'],
  ])('for %s: %s', (_what, containerLabels, execution, expected) => {
    expect(orphanReason({ labels: containerLabels }, execution, ctx)).toBe(expected);
  });
});

describe('the orphan reaper (real Docker engine)', () => {
  let docker: Dockerode;
  let backend: DockerBackend;
  let api: TestKiln;
  let worker: TestKiln | null = null;
  let pool: pg.Pool;
  let installation: string;
  let jobIds: string[];
  const created: ContainerHandle[] = [];

  /** A container of this installation for `execution` at `attempt`, run by `workerId`. */
  async function kilnContainer(execution: string, attempt: number, workerId: string, extra: Record<string, string> = {}): Promise<ContainerHandle> {
    const handle = await backend.prepare(
      testContainerConfig({
        labels: {
          [TEST_LABEL]: 'true',
          kiln: 'true',
          'kiln.execution': execution,
          'kiln.job': jobIds[0]!,
          'kiln.attempt': String(attempt),
          'kiln.worker': workerId,
          [INSTALLATION_LABEL]: installation,
          [DEADLINE_LABEL]: FAR,
          ...extra,
        },
      }),
    );
    created.push(handle);
    await backend.start(handle);
    return handle;
  }

  /**
   * An execution row in the given state, of job number `number` (one job each: at most one
   * execution of a job is ever RUNNING, which Postgres itself enforces).
   */
  async function execution(number: number, state: { status: string; attempt: number; workerId: string | null; leaseSeconds: number | null }): Promise<string> {
    const id = randomUUID();
    await pool.query(
      `insert into executions (id, job_id, owner, number, status, trigger, attempt, priority, plan, queued_at, started_at, worker_id, lease_expires_at, created_at)
       select $1, j.id, j.owner, $2, $3, 'MANUAL', $4, 5, $5::jsonb, now(), now(), $6,
              case when $7::int is null then null else now() + $7::int * interval '1 second' end, now()
         from jobs j where j.id = $8`,
      [id, 1, state.status, state.attempt, JSON.stringify({ image: TEST_IMAGE, workdir: '/workspace', env: {}, secrets: [], network: 'none', resources: { cpus: null, memoryBytes: null }, timeoutMs: 60_000, repository: null, artifacts: [], steps: [] }), state.workerId, state.leaseSeconds, jobIds[number - 1]],
    );
    return id;
  }

  async function exists(handle: ContainerHandle): Promise<boolean> {
    return docker.getContainer(handle.id).inspect().then(() => true, () => false);
  }

  beforeAll(async () => {
    docker = await requireDocker();
    backend = new DockerBackend(docker);
    api = await startTestKiln({ worker: false });
    pool = new pg.Pool({ connectionString: api.databaseUrl, max: 2 });
    installation = await installationId(pool);
    const token = await api.token('reaped');
    const jobs = [1, 2, 3, 4].map((n) => `  - name: Orphaned${n}\n    schedule: "0 0 1 1 *"\n    steps:\n      - run: "true"\n`).join('');
    const submitted = await api.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id } } }`, { s: `jobs:\n${jobs}` }, token);
    jobIds = submitted.data!.submitJob.jobs.map((j: { id: string }) => j.id);
  });

  afterAll(async () => {
    await worker?.stop();
    await Promise.all(created.map((h) => backend.destroy(h).catch(() => undefined)));
    await pool?.end();
    await api?.stop();
  });

  it('removes, at worker start, the containers of dead workers and finished attempts, and keeps the others', async () => {
    const deadWorkersRun = await execution(1, { status: 'RUNNING', attempt: 1, workerId: 'dead-worker-1', leaseSeconds: -30 });
    const deadWorker = await kilnContainer(deadWorkersRun, 1, 'dead-worker-1');
    const finishedRun = await execution(2, { status: 'FAILED', attempt: 1, workerId: 'dead-worker-2', leaseSeconds: null });
    const finished = await kilnContainer(finishedRun, 1, 'dead-worker-2');
    const vanished = await kilnContainer(randomUUID(), 1, 'dead-worker-3');
    const liveRun = await execution(3, { status: 'RUNNING', attempt: 1, workerId: 'live-worker', leaseSeconds: 3600 });
    const live = await kilnContainer(liveRun, 1, 'live-worker');
    const otherInstallation = await kilnContainer(randomUUID(), 1, 'dead-worker-4', { [INSTALLATION_LABEL]: 'another-kiln' });

    worker = await startTestKiln({ api: false, databaseUrl: api.databaseUrl, env: { KILN_REAP_INTERVAL_MS: '500' } });

    // Already gone when the worker has started: the first sweep runs before it takes any work.
    expect(await exists(deadWorker)).toBe(false);
    expect(await exists(finished)).toBe(false);
    expect(await exists(vanished)).toBe(false);
    expect(await exists(live)).toBe(true);
    expect(await exists(otherInstallation)).toBe(true);
  });

  it('keeps sweeping: a container left later by a dead worker goes within seconds', async () => {
    expect(worker).not.toBeNull();
    const run = await execution(4, { status: 'RUNNING', attempt: 1, workerId: 'live-then-dead', leaseSeconds: 3600 });
    const handle = await kilnContainer(run, 1, 'live-then-dead');
    await new Promise((r) => setTimeout(r, 1500));
    expect(await exists(handle)).toBe(true); // its worker is alive: left alone
    await pool.query(`update executions set lease_expires_at = now() - interval '1 second' where id = $1`, [run]);
    await waitFor(async () => ((await exists(handle)) ? undefined : true), 15_000, 'the reaper to remove the dead worker’s container');
  });
});
